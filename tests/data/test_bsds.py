from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from pixelwise.data.bsds import BSDS500, EdgePairList, read_bsds_boundaries
from pixelwise.data.datamodule import DataModule


def write_mat(path: Path, boundaries: list[np.ndarray]) -> None:
    """A BSDS500 groundTruth file: 1xN cell of structs with Segmentation and Boundaries."""
    cells = np.empty((1, len(boundaries)), dtype=object)
    for k, b in enumerate(boundaries):
        seg = (np.cumsum(b, axis=1) + 1).astype(
            np.uint16
        )  # any labels: the loader reads Boundaries
        cells[0, k] = {"Segmentation": seg, "Boundaries": b.astype(np.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"groundTruth": cells})


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def annotations(seed: int, k: int, h: int, w: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((h, w)) < 0.1 for _ in range(k)]


@pytest.fixture
def bsds(tmp_path):
    """A tiny BSR/BSDS500/data tree: 2 train (3 and 5 annotators, one portrait), 1 val, 1 test."""
    data = tmp_path / "BSR" / "BSDS500" / "data"
    gt = {}
    for split, name, k, (h, w) in [
        ("train", "100", 3, (6, 8)),
        ("train", "200", 5, (8, 6)),
        ("val", "300", 4, (6, 8)),
        ("test", "400", 2, (6, 8)),
    ]:
        write_image(data / "images" / split / f"{name}.jpg", np.full((h, w, 3), 128, np.uint8))
        gt[name] = annotations(int(name), k, h, w)
        write_mat(data / "groundTruth" / split / f"{name}.mat", gt[name])
    return tmp_path, gt


class TestReadBoundaries:
    def test_reads_every_annotator(self, tmp_path):
        written = annotations(0, 3, 4, 5)
        write_mat(tmp_path / "a.mat", written)
        got = read_bsds_boundaries(tmp_path / "a.mat")
        assert got.dtype == bool and got.shape == (3, 4, 5)
        assert all(np.array_equal(g, w) for g, w in zip(got, written))

    def test_single_annotator_cell(self, tmp_path):
        written = annotations(1, 1, 4, 5)
        write_mat(tmp_path / "one.mat", written)
        assert np.array_equal(read_bsds_boundaries(tmp_path / "one.mat"), np.stack(written))

    def test_file_without_ground_truth_is_named(self, tmp_path):
        scipy.io.savemat(str(tmp_path / "bad.mat"), {"gt": np.zeros((2, 2))})
        with pytest.raises(
            KeyError, match=r"bad.mat: no 'groundTruth' variable \(found \['gt'\]\)"
        ):
            read_bsds_boundaries(tmp_path / "bad.mat")

    def test_struct_without_boundaries_is_named(self, tmp_path):
        cells = np.empty((1, 1), dtype=object)
        cells[0, 0] = {"Segmentation": np.ones((2, 2), np.uint16)}
        scipy.io.savemat(str(tmp_path / "seg.mat"), {"groundTruth": cells})
        with pytest.raises(KeyError, match=r"seg.mat: groundTruth\{1\} has no 'Boundaries'"):
            read_bsds_boundaries(tmp_path / "seg.mat")

    def test_annotators_of_different_sizes(self, tmp_path):
        write_mat(tmp_path / "mixed.mat", [np.zeros((4, 5), bool), np.zeros((5, 4), bool)])
        with pytest.raises(ValueError, match=r"mixed.mat: groundTruth\{2\}.Boundaries is \(5, 4\)"):
            read_bsds_boundaries(tmp_path / "mixed.mat")

    def test_not_a_mat_file(self, tmp_path):
        (tmp_path / "junk.mat").write_text("hello")
        with pytest.raises(OSError, match="junk.mat: cannot read the .mat file"):
            read_bsds_boundaries(tmp_path / "junk.mat")


class TestBSDS500:
    def test_items_read_back_through_the_loader(self, bsds):
        root, gt = bsds
        ds = BSDS500(root, "train", label_mode="each")
        assert len(ds) == 2
        item = ds[1]
        assert item["name"] == "200" and item["image"].shape == (3, 8, 6)
        assert item["image"].mean().item() == pytest.approx(128 / 255, abs=2 / 255)
        assert torch.equal(item["edges"], torch.from_numpy(np.stack(gt["200"])))
        assert torch.equal(item["targets"], item["edges"].float())

    @pytest.mark.parametrize("mode", ["mean", "consensus"])
    def test_label_modes_reduce_annotators(self, bsds, mode):
        root, gt = bsds
        item = BSDS500(root, "val", label_mode=mode, label_threshold=0.5)[0]
        frac = np.stack(gt["300"]).mean(0)
        assert item["targets"].shape == (1, 6, 8)
        assert np.array_equal(item["targets"][0].numpy(), (frac >= 0.5).astype(np.float32))
        ignored = (frac > 0) & (frac < 0.5) if mode == "consensus" else np.zeros_like(frac, bool)
        assert np.array_equal(item["weights"][0].numpy() == 0, ignored)

    @pytest.mark.parametrize("sub", ["", "BSR", "BSR/BSDS500", "BSR/BSDS500/data"])
    def test_root_may_be_any_level_of_the_layout(self, bsds, sub):
        root, _ = bsds
        assert len(BSDS500(root / sub, "test")) == 1

    def test_split_list(self, bsds):
        root, _ = bsds
        ds = BSDS500(root, ["train", "val"])
        assert [ds[i]["name"] for i in range(len(ds))] == ["100", "200", "300"]

    def test_image_without_annotation_is_named(self, bsds):
        root, _ = bsds
        image = root / "BSR/BSDS500/data/images/test/500.jpg"
        write_image(image, np.zeros((6, 8, 3), np.uint8))
        with pytest.raises(
            FileNotFoundError,
            match=r"500.jpg: no ground truth; expected .*groundTruth/test/500.mat",
        ):
            BSDS500(root, "test")

    def test_annotation_size_differs_from_image(self, bsds):
        root, _ = bsds
        write_mat(root / "BSR/BSDS500/data/groundTruth/test/400.mat", annotations(0, 2, 8, 6))
        ds = BSDS500(root, "test")
        with pytest.raises(
            ValueError, match=r"400.mat: annotations are 8x6 but the image .*400.jpg is 6x8"
        ):
            ds[0]

    def test_missing_layout_and_bad_split(self, tmp_path, bsds):
        with pytest.raises(FileNotFoundError, match="no BSDS500 layout found"):
            BSDS500(tmp_path / "nowhere")
        root, _ = bsds
        with pytest.raises(ValueError, match="split='training'"):
            BSDS500(root, "training")
        with pytest.raises(ValueError, match="label_mode='vote'"):
            BSDS500(root, "train", label_mode="vote")

    def test_datamodule_batches_images_with_different_annotator_counts(self, bsds):
        root, _ = bsds
        factory = partial(BSDS500, root=root, split=["val", "test"])  # both 6x8: 4 and 2 annotators
        dm = DataModule(test=factory, batch_size=2, list_keys=["edges", "targets", "weights"])
        dm.setup("test")
        batch = next(iter(dm.test_dataloader()))
        assert batch["image"].shape == (2, 3, 6, 8)
        assert [e.shape[0] for e in batch["edges"]] == [4, 2]
        assert batch["name"] == ["300", "400"]


class TestEdgePairList:
    def make(self, tmp_path, lines=None, label_size=(5, 7)):
        write_image(tmp_path / "img" / "a.jpg", np.full((5, 7, 3), 200, np.uint8))
        label = np.zeros(label_size, np.uint8)
        label[1, 2], label[3, 4] = 255, 51  # all and a fifth of the annotators
        (tmp_path / "lab").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "lab" / "a.png"), label)
        lst = tmp_path / "train_pair.lst"
        lst.write_text("\n".join(lines or ["img/a.jpg lab/a.png", ""]) + "\n")
        return lst

    def test_reads_the_averaged_label(self, tmp_path):
        item = EdgePairList(self.make(tmp_path), label_mode="each")[0]
        assert item["name"] == "a" and item["image"].shape == (3, 5, 7)
        assert item["targets"][0, 1, 2].item() == 1.0
        assert item["targets"][0, 3, 4].item() == pytest.approx(0.2)
        assert item["targets"].sum().item() == pytest.approx(1.2)
        consensus = EdgePairList(tmp_path / "train_pair.lst", label_mode="consensus")[0]
        assert consensus["weights"][0, 3, 4] == 0 and consensus["targets"].sum() == 1

    def test_malformed_line_names_file_and_line(self, tmp_path):
        lst = self.make(tmp_path, ["img/a.jpg lab/a.png", "img/a.jpg"])
        with pytest.raises(ValueError, match=r"train_pair.lst:2: expected 'image_path label_path'"):
            EdgePairList(lst)

    def test_missing_file_names_the_line(self, tmp_path):
        lst = self.make(tmp_path, ["img/a.jpg lab/b.png"])
        with pytest.raises(
            FileNotFoundError, match=r"train_pair.lst:1: .*lab/b.png does not exist"
        ):
            EdgePairList(lst)

    def test_size_mismatch_names_both_files(self, tmp_path):
        ds = EdgePairList(self.make(tmp_path, label_size=(7, 5)))
        with pytest.raises(ValueError, match=r"a.png: label is 7x5 but the image .*a.jpg is 5x7"):
            ds[0]

    def test_empty_or_missing_list(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="list_file=.*none.lst: no such file"):
            EdgePairList(tmp_path / "none.lst")
        (tmp_path / "empty.lst").write_text("\n")
        with pytest.raises(ValueError, match="empty.lst: no image/label pairs"):
            EdgePairList(tmp_path / "empty.lst")
