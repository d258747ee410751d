"""Tests of VOCDetection on small VOCdevkit trees with XML annotations written by the tests."""

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.label_io import DatasetLayoutError
from pixelwise.data.voc_detection import VOC_DETECTION_CLASSES, VOCDetection, VOCFormatError


def xml(width: int, height: int, objects: list[tuple]) -> str:
    """An annotation file as the devkit writes it; objects are (name, difficult, xmin, ymin, xmax, ymax)."""
    parts = [
        f"<annotation><folder>VOC2007</folder><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    ]
    for name, difficult, x1, y1, x2, y2 in objects:
        diff = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        parts.append(
            f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>{diff}"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def write_voc(
    root: Path, year: str = "2007", items: dict | None = None, split: str = "trainval"
) -> Path:
    items = (
        items
        if items is not None
        else {
            "000005": (50, 40, [("chair", 0, 1, 1, 3, 2), ("person", 1, 10, 5, 50, 40)]),
            "000007": (30, 60, [("car", None, 5, 10, 20, 30)]),
        }
    )
    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for voc_id, (w, h, objects) in items.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{voc_id}.jpg"
        )
        (base / "Annotations" / f"{voc_id}.xml").write_text(xml(w, h, objects))
    (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in items))
    return root


@pytest.fixture
def root(tmp_path):
    return write_voc(tmp_path)


class TestItems:
    def test_one_based_inclusive_boxes_become_pixel_edges(self, root):
        ds = VOCDetection(root, split="trainval", size=None)
        a = ds[0]
        # xmin=1..xmax=3 covers the first three columns: [0, 3); ymin=1..ymax=2: [0, 2)
        np.testing.assert_array_equal(a["boxes"].numpy(), [[0, 0, 3, 2], [9, 4, 50, 40]])
        assert a["area"].tolist() == [6, 41 * 36]  # (xmax - xmin + 1) * (ymax - ymin + 1)
        assert a["labels"].tolist() == [
            VOC_DETECTION_CLASSES.index("chair"),
            VOC_DETECTION_CLASSES.index("person"),
        ]
        assert a["iscrowd"].tolist() == [False, True]  # difficult
        assert a["image_id"] == 5 and a["name"] == "000005" and a["orig_size"].tolist() == [40, 50]
        b = ds[1]
        assert b["iscrowd"].tolist() == [False]  # no <difficult> tag = 0
        assert ds.category_ids == tuple(range(1, 21)) and ds.num_classes == 20

    def test_box_of_pixels_matches_a_drawn_rectangle(self, tmp_path):
        # columns 4..9 and rows 2..6 (0-based) drawn; VOC writes them 1-based: 5..10, 3..7
        write_voc(tmp_path, items={"000001": (16, 12, [("dog", 0, 5, 3, 10, 7)])})
        box = VOCDetection(tmp_path, size=None)[0]["boxes"][0]
        m = np.zeros((12, 16), bool)
        m[2:7, 4:10] = True
        ys, xs = np.nonzero(m)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]

    def test_letterbox(self, root):
        a = VOCDetection(root, size=100)[0]  # 40 x 50 -> scale 2
        assert a["image"].shape == (3, 100, 100) and a["scale"] == 2.0
        np.testing.assert_array_equal(a["boxes"].numpy(), [[0, 0, 6, 4], [18, 8, 100, 80]])
        assert a["image"][:, 80:].abs().sum() == 0

    def test_drop_difficult(self, root):
        a = VOCDetection(root, size=None, keep_difficult=False)[0]
        assert (
            a["labels"].tolist() == [VOC_DETECTION_CLASSES.index("chair")]
            and not a["iscrowd"].any()
        )

    def test_07_plus_12_and_string_ids(self, root):
        write_voc(root, year="2012", items={"2008_000008": (20, 20, [("horse", 0, 2, 2, 19, 20)])})
        ds = VOCDetection(root, year=[2007, 2012], size=None)
        assert [ds[i]["image_id"] for i in range(3)] == [5, 7, 2008000008]
        assert ds[2]["name"] == "2008_000008"

    def test_root_may_be_the_devkit(self, root):
        assert len(VOCDetection(root / "VOCdevkit")) == 2

    def test_flip(self, root):
        t = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc"))
        a = VOCDetection(root, size=None, transform=t)[0]
        np.testing.assert_allclose(a["boxes"].numpy(), [[47, 0, 50, 2], [0, 4, 41, 40]], atol=1e-4)
        assert a["iscrowd"].tolist() == [False, True]

    def test_image_pixels(self, root):
        a = VOCDetection(root, size=None)[1]
        pixels = np.array(
            Image.open(root / "VOCdevkit/VOC2007/JPEGImages/000007.jpg").convert("RGB")
        )
        assert torch.equal(a["image"], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


class TestErrors:
    def test_missing_layout(self, tmp_path):
        with pytest.raises(DatasetLayoutError, match=r"VOC2007 is missing") as err:
            VOCDetection(tmp_path)
        assert "ImageSets/Main" in str(err.value)

    def test_missing_split_file(self, root):
        with pytest.raises(DatasetLayoutError, match=r"Main/test\.txt is missing"):
            VOCDetection(root, split="test")

    def test_unknown_class(self, tmp_path):
        write_voc(
            tmp_path,
            items={"000001": (16, 12, [("cat", 0, 1, 1, 5, 5), ("unicorn", 0, 5, 3, 10, 7)])},
        )
        with pytest.raises(
            VOCFormatError,
            match=r"000001\.xml: object 1 \('unicorn'\) has class name 'unicorn'; expected one of the 20",
        ):
            VOCDetection(tmp_path)

    def test_box_outside_the_image(self, tmp_path):
        write_voc(tmp_path, items={"000001": (16, 12, [("cat", 0, 1, 1, 17, 5)])})
        with pytest.raises(
            VOCFormatError,
            match=r"000001\.xml: object 0 \('cat'\) has bndbox xmin=1 ymin=1 xmax=17 .*width=16",
        ):
            VOCDetection(tmp_path)

    def test_box_with_xmax_below_xmin(self, tmp_path):
        write_voc(tmp_path, items={"000001": (16, 12, [("cat", 0, 8, 1, 4, 5)])})
        with pytest.raises(VOCFormatError, match=r"xmin=8 .*xmax=4.*expected 1 <= xmin <= xmax"):
            VOCDetection(tmp_path)

    def test_not_a_number(self, tmp_path):
        write_voc(tmp_path, items={"000001": (16, 12, [("cat", 0, "a", 1, 4, 5)])})
        with pytest.raises(
            VOCFormatError, match=r"object 0 \('cat'\) <xmin> is 'a'; expected a number"
        ):
            VOCDetection(tmp_path)

    def test_listed_image_absent(self, root):
        (root / "VOCdevkit/VOC2007/JPEGImages/000007.jpg").unlink()
        with pytest.raises(
            DatasetLayoutError,
            match=r"id '000007' of .*trainval\.txt has no image; expected .*000007\.jpg",
        ):
            VOCDetection(root)

    def test_listed_annotation_absent(self, root):
        (root / "VOCdevkit/VOC2007/Annotations/000005.xml").unlink()
        with pytest.raises(DatasetLayoutError, match=r"id '000005' .* has no annotation"):
            VOCDetection(root)

    def test_image_size_differs_from_the_xml(self, root):
        Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(
            root / "VOCdevkit/VOC2007/JPEGImages/000005.jpg"
        )
        with pytest.raises(VOCFormatError, match=r"000005\.jpg: image is 5x5 .* says 50x40"):
            VOCDetection(root)[0]

    @pytest.mark.parametrize("kwargs", [{"split": "segmentation"}, {"year": 2010}, {"limit": 0}])
    def test_bad_arguments(self, root, kwargs):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            VOCDetection(root, **kwargs)


def test_data_config_builds_the_splits(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from pixelwise.cli import CONFIG_DIR

    items07 = {"000005": (50, 40, [("chair", 0, 1, 1, 3, 2)])}
    for split in ("train", "val", "test"):
        write_voc(tmp_path, items=items07, split=split)
    write_voc(
        tmp_path,
        year="2012",
        items={"2008_000008": (20, 20, [("horse", 0, 2, 2, 19, 20)])},
        split="train",
    )
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=["data=voc_detection", f"data.root={tmp_path}", "data.num_workers=0"]
        )
    dm = instantiate(cfg.data, _convert_="all")
    assert (
        dm.info.num_classes == 20
        and dm.info.class_names[14] == "person"
        and dm.info.category_ids[-1] == 20
    )
    assert (
        len(dm.dataset("train")) == 2
        and len(dm.dataset("val")) == 1
        and len(dm.dataset("test")) == 1
    )
    dm.batch_size = 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 512, 512) and isinstance(batch["boxes"], list)


def test_info(root):
    info = VOCDetection(root, size=(32, 48)).info
    assert info.num_classes == 20 and info.category_ids[0] == 1 and info.image_size == (32, 48)
