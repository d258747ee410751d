"""End-to-end homographic adaptation: export (bad files, resume, kill, DDP, unwritable dir) and rounds.

The runs go through ``pixelwise.cli.train_main`` (what ``train.py`` runs), which dispatches
``task.run.mode`` / ``task.run.rounds`` to ``pixelwise.export``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.integration.conftest import REPO, env

ENTRY = """
from pixelwise.cli import train_main

if __name__ == "__main__":
    train_main()
"""

# A tiny teacher-sized net and few homographies keep the runs short.
FAST = [
    "task=homographic_adaptation",
    "logger=csv",
    "model.channels=[8,8,16,16]",
    "model.head_channels=32",
    "task.num_homographies=4",
    "task.fit_num_homographies=2",
    "data.num_workers=0",
    "callbacks.progress_bar=null",
    "task.fallback_teacher=null",  # a random tiny teacher: these runs test the machinery
]


def entry(tmp_path: Path) -> Path:
    script = tmp_path / "adapt.py"
    script.write_text(ENTRY)
    return script


def run(tmp_path: Path, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(entry(tmp_path)), *FAST, *args],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def image_tree(root: Path, n_good: int = 5) -> list[str]:
    """Good PNG/JPG images in nested folders plus three bad files; returns the good names."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(n_good):
        rel = f"set{i % 2}/sub/img{i:02d}" if i % 3 else f"img{i:02d}"
        path = root / f"{rel}.{'png' if i % 2 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        blocks = (rng.random((6, 8)) * 255).astype(np.uint8)
        cv2.imwrite(str(path), cv2.resize(blocks, (80, 60), interpolation=cv2.INTER_NEAREST))
        names.append(rel)
    for sub in ("set0", "set1"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "set0" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "empty.png").write_bytes(b"")
    cv2.imwrite(str(root / "set1" / "small.png"), np.zeros((10, 10), np.uint8))
    return sorted(names)


def labels(out: Path) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    for p in sorted(out.rglob("*.npz")):
        with np.load(p) as d:
            found[p.relative_to(out).with_suffix("").as_posix()] = {k: d[k] for k in d.files}
    return found


def export_args(root: Path, out: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "task.run.mode=export",
        "data=images",
        f"data.root={root}",
        "data.size=[48,64]",
        "data.small=reject",
        "data.eval_batch_size=2",
        f"task.run.export.dirpath={out}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


@pytest.mark.slow
def test_export_mirrors_the_tree_skips_bad_files_and_resumes(tmp_path):
    root, out = tmp_path / "images", tmp_path / "labels"
    good = image_tree(root)
    proc = run(
        tmp_path, export_args(root, out, tmp_path / "run1", "task.run.export.save_heatmap=true")
    )
    first = labels(out)
    assert sorted(first) == good
    for item in first.values():
        assert (
            item["keypoints"].shape[1] == 2
            and item["scores"].shape == item["keypoints"][:, 0].shape
        )
        assert item["heatmap"].shape == (48, 64) and item["image_size"].tolist() == [48, 64]
        assert (np.diff(item["scores"]) <= 0).all() and (item["scores"] >= 0.015).all()
    summary = json.loads((tmp_path / "run1" / "export.json").read_text())
    assert (summary["written"], summary["skipped"]) == (5, 3)
    log = proc.stdout + proc.stderr
    for bad in ("broken.jpg", "empty.png", "small.png"):
        assert bad in log
    assert "skipped 3 unusable image(s)" in log and "10x10 is smaller than data size 48x64" in log

    # Rerun after losing two files: only those two are exported again, identically.
    for name in good[:2]:
        (out / f"{name}.npz").unlink()
    run(tmp_path, export_args(root, out, tmp_path / "run2", "task.run.export.save_heatmap=true"))
    summary = json.loads((tmp_path / "run2" / "export.json").read_text())
    assert summary["written"] == 2 and summary["images"] == 2 + 3  # + the 3 unusable, retried
    again = labels(out)
    for name in good:
        for key in first[name]:
            np.testing.assert_array_equal(again[name][key], first[name][key])
    proc = run(tmp_path, export_args(root, out, tmp_path / "run3"))
    # Only the unusable files are tried again (they may have been fixed meanwhile).
    assert "3 of 8 images to label (5 already in" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_unwritable_output_directory_fails_before_any_work(tmp_path):
    root = tmp_path / "images"
    image_tree(root, n_good=1)
    (tmp_path / "blocker").write_text("a file, not a directory")
    proc = run(
        tmp_path, export_args(root, tmp_path / "blocker" / "labels", tmp_path / "run"), check=False
    )
    assert proc.returncode == 2
    assert "blocker/labels is not writable" in proc.stderr
    assert "Predicting" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_killed_export_completes_on_rerun_without_partial_files(tmp_path):
    root, out = tmp_path / "images", tmp_path / "labels"
    good = image_tree(root, n_good=24)
    slow = ["task.num_homographies=60", "data.eval_batch_size=1"]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(entry(tmp_path)),
            *FAST,
            *export_args(root, out, tmp_path / "run1", *slow),
        ],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    try:
        while time.time() < deadline and len(list(out.rglob("*.npz"))) < 3:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(list(out.rglob("*.npz")))
    assert 3 <= done < len(good), "the kill should land mid-export"
    for p in out.rglob("*.npz"):  # every file present is complete
        with np.load(p) as d:
            assert d["keypoints"].shape[1] == 2
    run(tmp_path, export_args(root, out, tmp_path / "run2", *slow))
    summary = json.loads((tmp_path / "run2" / "export.json").read_text())
    assert summary["written"] == len(good) - done
    assert sorted(labels(out)) == good


@pytest.mark.slow
def test_ddp_export_writes_each_image_once_and_equals_one_process(tmp_path):
    root = tmp_path / "images"
    good = image_tree(root, n_good=7)
    run(tmp_path, export_args(root, tmp_path / "single", tmp_path / "r1"))
    run(tmp_path, export_args(root, tmp_path / "ddp", tmp_path / "r2", "trainer=ddp_cpu"))
    summary = json.loads((tmp_path / "r2" / "export.json").read_text())
    assert (summary["written"], summary["skipped"], summary["images"]) == (7, 3, 10)
    single, ddp = labels(tmp_path / "single"), labels(tmp_path / "ddp")
    assert sorted(single) == sorted(ddp) == good
    for name in good:
        np.testing.assert_array_equal(single[name]["keypoints"], ddp[name]["keypoints"])
        np.testing.assert_allclose(single[name]["scores"], ddp[name]["scores"], rtol=1e-5)


@pytest.mark.slow
def test_two_rounds_of_export_and_hard_target_training(tmp_path):
    out = tmp_path / "run"
    run(
        tmp_path,
        [
            "task.run.rounds=2",
            "task.targets=hard",
            "debug=fdr",
            "data.eval_batch_size=4",
            f"hydra.run.dir={out}",
        ],
    )
    history = json.loads((out / "rounds.json").read_text())
    assert [h["round"] for h in history] == [1, 2]
    assert history[0]["teacher"] is None
    assert history[1]["teacher"] == str(out / "round_1" / "detector.pt")
    for k in (1, 2):
        assert list((out / f"round_{k}" / "pseudo_labels").glob("*.npz"))
        assert (out / f"round_{k}" / "detector.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    # Round 2's teacher is round 1's student: the same detector on the same test pairs.
    assert metrics["round_2/test/teacher_repeatability"] == pytest.approx(
        metrics["round_1/test/repeatability"]
    )
    assert metrics["test/repeatability"] == metrics["round_2/test/repeatability"]


@pytest.mark.slow
def test_a_round_of_exported_heatmap_targets(tmp_path):
    # task.targets=exported: the round's export writes the adapted heatmaps, the fit reads them.
    out = tmp_path / "run"
    run(
        tmp_path,
        [
            "task.run.rounds=1",
            "task.targets=exported",
            "debug=fdr",
            "data.eval_batch_size=4",
            f"hydra.run.dir={out}",
        ],
    )
    files = list((out / "round_1" / "pseudo_labels").glob("*.npz"))
    assert files
    with np.load(files[0]) as f:
        assert f["heatmap"].shape == (120, 160)  # data=sample_images' size
    assert (out / "round_1" / "detector.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test/repeatability"] <= 1


@pytest.mark.slow
def test_soft_target_fit_runs_with_the_default_data(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, ["debug=fdr", f"hydra.run.dir={out}"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        0 <= metrics["test/repeatability"] <= 1 and 0 <= metrics["test/teacher_repeatability"] <= 1
    )
    assert (out / "detector.pt").is_file()


def test_train_py_dispatches_mode_export(tmp_path):
    root = tmp_path / "images"
    good = image_tree(root, n_good=2)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            *FAST,
            *export_args(root, tmp_path / "labels", tmp_path / "run"),
        ],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(labels(tmp_path / "labels")) == good


def test_old_top_level_keys_fail_in_one_line_naming_the_new_key(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "task=homographic_adaptation", "mode=export"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "error: mode=export: 'mode' moved into the task's config group: use task.run.mode=export"
    ]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("override", "new"),
    [
        ("mode=export", "task.run.mode=export"),
        ("+rounds=2", "task.run.rounds=2"),
        ("export.dirpath=/x", "task.run.export.dirpath=/x"),
        ("teacher=w.pt", "task.teacher=w.pt"),
        ("targets=hard", "task.targets=hard"),
    ],
)
def test_moved_override_names_the_new_key(override, new, capsys):
    from pixelwise.cli import _refuse_moved_overrides

    with pytest.raises(SystemExit) as info:
        _refuse_moved_overrides(["task=homographic_adaptation", override])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"use {new}")
    _refuse_moved_overrides(
        ["task.run.mode=export", "task.teacher=w.pt", "-m", "trainer.max_steps=2"]
    )


def test_moved_key_in_a_config_is_a_user_error():
    from omegaconf import OmegaConf

    from pixelwise.errors import UserError
    from pixelwise.export import Runner, run_mode

    def never(*args, **kwargs):
        raise AssertionError("nothing is built for a refused config")

    runner = Runner(instantiate=never, build_task=never, train=never)
    cfg = OmegaConf.create({"teacher": "w.pt", "task": {"run": {"mode": "fit"}}})
    with pytest.raises(UserError, match=r"^teacher: .*use task\.teacher "):
        run_mode(cfg, runner)
    with pytest.raises(
        UserError, match=r"task\.run\.mode=predict: expected one of \['fit', 'export'\]"
    ):
        run_mode(OmegaConf.create({"task": {"run": {"mode": "predict"}}}), runner)
    # A task without a run node (every other task) is a plain fit.
    trained = []
    fit = Runner(instantiate=never, build_task=never, train=lambda c: trained.append(c) or 0.5)
    assert run_mode(OmegaConf.create({"task": {"_target_": "x"}}), fit) == 0.5 and trained
