"""cli._check_ckpt: a checkpoint is validated with torch.load(weights_only=True), never unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from omegaconf import OmegaConf

from pixelwise.cli import UserError, _check_ckpt, _pickle_imports


class _WritesAFile:
    """Unpickling this runs code: it writes ``marker`` (what an attacker's payload would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _malicious_files(tmp_path: Path) -> dict[str, Path]:
    """The same payload as a torch.save zip checkpoint and as raw pickles of protocols 2 and 5."""
    marker = tmp_path / "marker.txt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": _WritesAFile(marker)}
    files = {"zip": tmp_path / "zip.ckpt"}
    torch.save(payload, files["zip"])
    for protocol in (2, 5):
        files[f"pickle{protocol}"] = tmp_path / f"pickle{protocol}.ckpt"
        with files[f"pickle{protocol}"].open("wb") as f:
            pickle.dump(payload, f, protocol=protocol)
    return files


@pytest.mark.parametrize("kind", ["zip", "pickle2", "pickle5"])
def test_malicious_pickle_is_refused_without_running(kind, tmp_path):
    file = _malicious_files(tmp_path)[kind]
    marker = tmp_path / "marker.txt"
    with pytest.raises(UserError) as err:
        _check_ckpt(str(file), "ckpt_path")
    assert not marker.exists(), "the payload ran"
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"ckpt_path={file}: refused to load:")
    assert "builtins.exec" in message

    # The file is really armed: an unrestricted unpickle runs the payload.
    with file.open("rb") as f:
        if kind == "zip":
            torch.load(f, weights_only=False)
        else:
            pickle.load(f)
    assert marker.read_text() == "pwned"


class _HParamsModel(BoringModel):
    def __init__(self, cfg, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()


@pytest.mark.parametrize(
    "hparams",
    [
        {"lr": 0.1, "classes": ["a", "b"]},
        OmegaConf.create({"net": {"width": 8, "widths": [1, 2]}, "name": None, "x": 1.5}),
    ],
    ids=["dict", "dictconfig"],
)
def test_a_real_lightning_checkpoint_is_accepted(hparams, tmp_path):
    """Trainer-written: optimizer, scheduler, ModelCheckpoint and loop state; dict or omegaconf hparams."""
    trainer = L.Trainer(
        max_steps=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        val_check_interval=1,
    )
    trainer.fit(_HParamsModel(hparams))
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    assert _check_ckpt(str(ckpt), "ckpt_path") == str(ckpt)
    if not isinstance(hparams, dict):  # the omegaconf types are really in the file
        assert any(n.startswith("omegaconf.") for n in _pickle_imports(ckpt))
    assert torch.load(ckpt, weights_only=False)["hyper_parameters"]["cfg"] == hparams


def test_not_a_checkpoint_and_not_a_pickle(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"cannot read a Lightning checkpoint") as err:
        _check_ckpt(str(garbage), "ckpt_path")
    assert "\n" not in str(err.value) and str(garbage) in str(err.value)
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(UserError, match=r"not a Lightning checkpoint \(no 'state_dict'\)"):
        _check_ckpt(str(plain), "ckpt_path")


def test_evaluate_refuses_a_malicious_checkpoint_in_one_line(tmp_path):
    from tests.integration.conftest import run_script

    file = _malicious_files(tmp_path)["zip"]
    proc = run_script("evaluate.py", [f"ckpt_path={file}"], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: ckpt_path={file}: refused to load:") and "builtins.exec" in last
    assert not (tmp_path / "marker.txt").exists()


def test_a_checkpoint_of_another_task_is_refused_naming_both_tasks(tmp_path):
    from pixelwise.cli import _check_ckpt
    from pixelwise.errors import UserError
    from pixelwise.tasks.base import TASK_CLASS_KEY

    file = tmp_path / "seg.ckpt"
    seg = "pixelwise.tasks.segmentation.SegmentationTask"
    torch.save({"state_dict": {}, TASK_CLASS_KEY: seg}, file)
    assert _check_ckpt(str(file), "ckpt_path", seg) == str(file)
    with pytest.raises(UserError) as info:
        _check_ckpt(str(file), "ckpt_path", "pixelwise.tasks.edges.EdgesTask")
    assert str(info.value) == (
        f"ckpt_path={file}: this checkpoint was trained by task=segmentation, but the run "
        "builds task=edges; add task=segmentation (and that run's model/data) to the command"
    )


def test_tasks_write_their_class_into_checkpoints():
    from pixelwise.nets.unet import UNet
    from pixelwise.tasks.base import TASK_CLASS_KEY
    from pixelwise.tasks.segmentation import SegmentationTask

    task = SegmentationTask(UNet(num_classes=3, base_channels=4, depth=1), torch.optim.SGD, None, 3)
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint[TASK_CLASS_KEY] == "pixelwise.tasks.segmentation.SegmentationTask"


def test_state_dict_mismatch_is_reported_in_config_terms():
    from omegaconf import OmegaConf

    from pixelwise.cli import user_error_message

    err = RuntimeError(
        'Error(s) in loading state_dict for EdgeTask:\n\tMissing key(s) in state_dict: "net.a".'
    )
    message = user_error_message(
        err, OmegaConf.create({"ckpt_path": "x.ckpt", "task_name": "edges"})
    )
    assert message.startswith("ckpt_path=x.ckpt: its weights do not fit task=edges")
    assert 'Missing key(s) in state_dict: "net.a"' in message
    assert user_error_message(RuntimeError("a bug"), OmegaConf.create({})) is None


def test_a_new_datasets_format_error_is_reported_without_registering_it():
    """A dataset's format error subclasses DataFormatError and the CLI reports it in its own words."""
    from omegaconf import OmegaConf

    from pixelwise.cli import user_error_message
    from pixelwise.data.coco_detection import CocoFormatError
    from pixelwise.data.label_io import DatasetLayoutError
    from pixelwise.data.voc_detection import VOCFormatError
    from pixelwise.errors import DataFormatError
    from pixelwise.formats.panoptic import PanopticFormatError

    class NewFormatError(DataFormatError):
        pass

    cfg = OmegaConf.create({})
    try:
        raise RuntimeError("while reading item 3") from NewFormatError(
            "a.json: entry 3 has no 'id'"
        )
    except RuntimeError as err:
        assert user_error_message(err, cfg) == "a.json: entry 3 has no 'id'"
    for shipped in (CocoFormatError, VOCFormatError, PanopticFormatError):
        assert issubclass(shipped, DataFormatError) and issubclass(shipped, ValueError)
        assert user_error_message(shipped("x.json: bad"), cfg) == "x.json: bad"
    assert user_error_message(DatasetLayoutError("root/ is missing"), cfg) == "root/ is missing"
    assert user_error_message(ValueError("a bug"), cfg) is None


def test_a_taken_master_port_is_reported_with_the_port(monkeypatch):
    import torch.distributed as dist

    from pixelwise.cli import user_error_message

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29533")
    taken = dist.DistNetworkError(
        "The server socket has failed to listen on any local network address. port: 29533, "
        "useIpv6: false, code: -98, name: EADDRINUSE, message: address already in use"
    )
    try:
        raise RuntimeError("trainer.fit failed") from taken
    except RuntimeError as err:
        message = user_error_message(err, OmegaConf.create({}))
    assert message.startswith(
        "DDP: rank 0 could not listen on MASTER_PORT=29533 (MASTER_ADDR=127.0.0.1): the port is "
        "already in use; set MASTER_PORT to a free port"
    )
    # Another network failure (a peer that never came) is not this mistake.
    assert user_error_message(dist.DistNetworkError("timed out"), OmegaConf.create({})) is None
