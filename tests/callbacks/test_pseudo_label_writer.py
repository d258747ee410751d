"""PseudoLabelWriter: file contents, resumability, atomic writes, unusable items, unwritable dirs."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pixelwise.callbacks import pseudo_label_writer as plw
from pixelwise.callbacks.pseudo_label_writer import PseudoLabelWriter, save_npz_atomic
from pixelwise.data.collate import DictCollate
from pixelwise.data.images import read_pseudo_labels
from pixelwise.tasks.outputs import KeypointOutput


class Named(Dataset):
    """Items named like an image tree; image i has value i everywhere; item 2 is unusable."""

    names = ["a", "sub/b", "sub/c", "sub/deep/d", "e"]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": torch.full((1, 8, 12), float(i)),
            "name": self.names[i],
            "path": f"/data/{self.names[i]}.png",
            "ok": i != 2,
        }


class Fixed(L.LightningModule):
    """predict_step: image i -> keypoints [[i, 0], [0, i]], scores [0.9, 0.5], heatmap = image / 10."""

    def predict_step(self, batch, batch_idx):
        values = batch["image"][:, 0, 0, 0]
        kps = [torch.tensor([[v, 0.0], [0.0, v]]) for v in values.tolist()]
        return KeypointOutput(
            keypoints=kps,
            scores=[torch.tensor([0.9, 0.5]) for _ in kps],
            heatmap=batch["image"] / 10,
        )


def predict(writer: PseudoLabelWriter, indices=None) -> None:
    data = Named() if indices is None else torch.utils.data.Subset(Named(), indices)
    loader = DataLoader(data, batch_size=2, collate_fn=DictCollate())
    trainer = L.Trainer(
        callbacks=[writer],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.predict(Fixed(), loader, return_predictions=False)


def test_one_file_per_usable_image_mirroring_the_names(tmp_path, caplog):
    writer = PseudoLabelWriter(tmp_path / "out", save_heatmap=True)
    with caplog.at_level(logging.WARNING, logger="pixelwise"):
        predict(writer)
    files = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert files == ["a.npz", "e.npz", "sub", "sub/b.npz", "sub/deep", "sub/deep/d.npz"]
    d = read_pseudo_labels(tmp_path / "out" / "sub" / "deep" / "d.npz")
    np.testing.assert_array_equal(d["keypoints"], [[3, 0], [0, 3]])
    np.testing.assert_array_equal(d["scores"], np.float32([0.9, 0.5]))
    assert d["image_size"].tolist() == [8, 12]
    assert d["heatmap"].dtype == np.float16 and np.allclose(d["heatmap"], 0.3, atol=1e-3)
    assert writer.summary["written"] == 4 and writer.summary["skipped"] == 1
    assert writer.summary["skipped_files"] == ["/data/sub/c.png"]
    assert "skipped 1 unusable image(s)" in caplog.text and "/data/sub/c.png" in caplog.text


def test_pending_lists_missing_names_and_existing_files_are_kept(tmp_path):
    writer = PseudoLabelWriter(tmp_path)
    predict(writer)
    assert writer.pending(Named()) == [2]  # only the unusable one never got a file
    (tmp_path / "sub" / "b.npz").unlink()
    marker = tmp_path / "a.npz"
    before = marker.read_bytes()
    assert writer.pending(Named()) == [1, 2]
    # Not filtered: the existing files are left alone, the missing one is written.
    predict(writer)
    assert marker.read_bytes() == before
    assert writer.summary["written"] == 1 and writer.summary["already_present"] == 3
    # Filtered first (as pixelwise.export does): only the pending items are predicted.
    (tmp_path / "e.npz").unlink()
    predict(writer, writer.pending(Named()))
    assert writer.summary["written"] == 1 and writer.summary["images"] == 2
    assert PseudoLabelWriter(tmp_path, overwrite=True).pending(Named()) == [0, 1, 2, 3, 4]
    # Leftover temporary files of a killed run are not results.
    (tmp_path / ".a.npz.123.tmp").write_bytes(b"partial")
    (tmp_path / "a.npz").unlink()
    assert writer.pending(Named()) == [0, 2]


def test_pending_needs_names():
    with pytest.raises(TypeError, match="has no 'names' list"):
        PseudoLabelWriter("x").pending([1, 2])


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "x.npz"
    save_npz_atomic(target, {"keypoints": np.zeros((1, 2), np.float32)})
    good = target.read_bytes()

    def broken(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(plw.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_npz_atomic(target, {"keypoints": np.ones((5, 2), np.float32)})
    assert target.read_bytes() == good  # the old complete file, not a truncated new one
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_unwritable_output_directory_is_a_clear_error_before_any_work(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    writer = PseudoLabelWriter(tmp_path / "file" / "labels")
    with pytest.raises(PermissionError, match=r"file/labels is not writable"):
        writer.check_writable()
    with pytest.raises(PermissionError, match="not writable"):
        predict(writer)
    assert writer.written == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="heatmap_dtype='int8'"):
        PseudoLabelWriter("x", heatmap_dtype="int8")


def test_batch_without_names_is_an_error(tmp_path):
    writer = PseudoLabelWriter(tmp_path)
    with pytest.raises(ValueError, match="no 'name' entry"):
        writer.write_on_batch_end(None, None, {}, None, {"image": torch.zeros(1, 1, 4, 4)}, 0, 0)
