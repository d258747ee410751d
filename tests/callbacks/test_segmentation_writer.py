"""SegmentationPredictionWriter: file names, id spaces (Cityscapes labelIds, VOC indices), colours, DDP shards."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image
from torch.utils.data import DataLoader

from pixelwise.callbacks.segmentation import SegmentationMetrics
from pixelwise.callbacks.segmentation_writer import SegmentationPredictionWriter, prediction_name
from pixelwise.data.cityscapes import Cityscapes
from pixelwise.data.datamodule import DataModule
from pixelwise.data.info import DatasetInfo
from pixelwise.data.synthetic_scenes import SCENE_PALETTE, SyntheticScenes
from pixelwise.data.voc import VOC_COLORMAP, VOCSegmentation
from pixelwise.nets.unet import UNet
from pixelwise.tasks.outputs import SegmentationOutput
from pixelwise.tasks.segmentation import SegmentationTask


def bare(cls):
    """A dataset object without its on-disk tree: class attributes and save_prediction only."""
    return cls.__new__(cls)


def fake_trainer(dataset, loaders=None, rank=0):
    info = DatasetInfo(
        num_classes=getattr(dataset, "num_classes", None), palette=getattr(dataset, "palette", None)
    )
    dm = SimpleNamespace(dataset=lambda split: dataset, info=info)
    return SimpleNamespace(datamodule=dm, test_dataloaders=loaders, global_rank=rank)


def run_test_epoch(writer, trainer, batches):
    writer.on_test_epoch_start(trainer, None)
    for i, (outputs, batch) in enumerate(batches):
        writer.on_test_batch_end(trainer, None, outputs, batch, i)
    writer.on_test_epoch_end(trainer, None)


# trainIds -> Cityscapes labelIds, by hand from the official table
TRAIN_TO_LABEL = {0: 7, 1: 8, 2: 11, 10: 23, 11: 24, 12: 25, 13: 26, 18: 33}


class TestCityscapes:
    def test_label_ids_colours_and_official_names(self, tmp_path):
        ds = bare(Cityscapes)
        pred = torch.tensor([[0, 1, 2, 10], [11, 12, 13, 18]])
        path = "/data/cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"
        writer = SegmentationPredictionWriter(tmp_path / "pred", tmp_path / "color")
        outputs = SegmentationOutput(preds=pred[None], logits=torch.zeros(1, 19, 2, 4))
        run_test_epoch(writer, fake_trainer(ds), [(outputs, {"path": [path]})])
        out = tmp_path / "pred" / "frankfurt_000000_000294_leftImg8bit.png"
        assert writer.written == [out]
        with Image.open(out) as im:
            assert im.mode == "L"
            ids = np.asarray(im)
        expected = np.vectorize(TRAIN_TO_LABEL.get)(pred.numpy())
        np.testing.assert_array_equal(ids, expected)
        with Image.open(tmp_path / "color" / out.name) as im:
            color = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(color[0, 0], (128, 64, 128))  # road
        np.testing.assert_array_equal(color[1, 2], (0, 0, 142))  # car
        np.testing.assert_array_equal(color, Cityscapes.palette[pred.numpy()])


class TestVOC:
    def test_palette_indices_named_by_image_id(self, tmp_path):
        ds = bare(VOCSegmentation)
        pred = torch.tensor([[[0, 15, 15], [7, 20, 0]], [[1, 1, 1], [2, 2, 2]]])
        paths = ["/voc/VOCdevkit/VOC2012/JPEGImages/2007_000033.jpg", "/voc/JPEGImages/b.jpg"]
        writer = SegmentationPredictionWriter(tmp_path / "pred", tmp_path / "color")
        outputs = SegmentationOutput(preds=pred, logits=torch.zeros(2, 21, 2, 3))
        run_test_epoch(writer, fake_trainer(ds), [(outputs, {"path": paths})])
        for k, name in enumerate(["2007_000033.png", "b.png"]):
            with Image.open(tmp_path / "pred" / name) as im:
                assert im.mode == "P"  # the SegmentationClass format: indices, VOC colour map
                np.testing.assert_array_equal(np.asarray(im), pred[k].numpy())
                palette = np.asarray(im.getpalette()[: 21 * 3]).reshape(21, 3)
            np.testing.assert_array_equal(palette, VOC_COLORMAP[:21])
            with Image.open(tmp_path / "color" / name) as im:
                np.testing.assert_array_equal(
                    np.asarray(im.convert("RGB")), VOC_COLORMAP[pred[k].numpy()]
                )


class TestWithoutPaths:
    def test_named_by_dataset_index_of_this_rank(self, tmp_path):
        ds = SimpleNamespace(palette=SCENE_PALETTE, num_classes=9)
        items = list(range(7))
        # rank 1 of 2, as the DataModule's eval sampler shards it: items 1, 3, 5
        sampler = UnrepeatedDistributedSampler(items, num_replicas=2, rank=1, shuffle=False)
        loader = DataLoader(items, batch_size=2, sampler=sampler)
        g = torch.Generator().manual_seed(0)
        preds = [
            torch.randint(0, 9, (2, 4, 5), generator=g),
            torch.randint(0, 9, (1, 4, 5), generator=g),
        ]
        writer = SegmentationPredictionWriter(tmp_path / "pred", tmp_path / "color")
        batches = [
            (SegmentationOutput(preds=p, logits=torch.zeros(len(p), 9, 4, 5)), {}) for p in preds
        ]
        run_test_epoch(writer, fake_trainer(ds, loader, rank=1), batches)
        names = sorted(p.name for p in (tmp_path / "pred").iterdir())
        assert names == ["000001.png", "000003.png", "000005.png"]
        flat = torch.cat(preds)
        for k, name in enumerate(names):
            with Image.open(tmp_path / "pred" / name) as im:
                np.testing.assert_array_equal(np.asarray(im), flat[k].numpy())
            with Image.open(tmp_path / "color" / name) as im:
                np.testing.assert_array_equal(
                    np.asarray(im.convert("RGB")), SCENE_PALETTE[flat[k].numpy()]
                )


class TestSwitchesAndErrors:
    def test_disabled_writes_nothing(self, tmp_path):
        writer = SegmentationPredictionWriter(tmp_path / "pred", enabled=False)
        outputs = SegmentationOutput(preds=torch.zeros(1, 2, 2, dtype=torch.long))
        run_test_epoch(
            writer, fake_trainer(bare(VOCSegmentation)), [(outputs, {"path": ["a.jpg"]})]
        )
        assert not (tmp_path / "pred").exists() and writer.written == []

    def test_two_images_with_one_name_is_an_error(self, tmp_path):
        writer = SegmentationPredictionWriter(tmp_path / "pred")
        outputs = SegmentationOutput(preds=torch.zeros(2, 2, 2, dtype=torch.long))
        batch = {"path": ["/x/train/a.jpg", "/x/val/a.png"]}
        with pytest.raises(
            ValueError, match=r"/x/train/a.jpg and /x/val/a.png both map to .*a.png"
        ):
            run_test_epoch(writer, fake_trainer(bare(VOCSegmentation)), [(outputs, batch)])

    def test_bad_stage(self, tmp_path):
        with pytest.raises(ValueError, match=r"stages=\['val'\]: \['val'\] not in"):
            SegmentationPredictionWriter(tmp_path, stages=["val"])

    def test_prediction_name(self):
        assert prediction_name("/a/b/c_leftImg8bit.png", None) == "c_leftImg8bit.png"
        assert prediction_name(None, 42) == "000042.png"


def test_lightning_test_run_writes_every_synthetic_image_and_logs_iiou(tmp_path):
    """A real Trainer.test: the files are the task's argmax, and the callback's iIoU is logged."""
    torch.manual_seed(0)
    scenes = partial(SyntheticScenes, size=(32, 48), length=5, split="test")
    dm = DataModule(
        test=scenes, batch_size=2, num_workers=0, num_classes=9, instance_classes=[6, 7, 8]
    )
    task = SegmentationTask(UNet(num_classes=9, base_channels=4, depth=2), optimizer=None)
    writer = SegmentationPredictionWriter(tmp_path / "pred", tmp_path / "color")
    metrics = SegmentationMetrics(9)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[writer, metrics],
        default_root_dir=tmp_path,
    )
    trainer.test(task, datamodule=dm)
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    task.eval()
    data = SyntheticScenes(size=(32, 48), length=5, split="test")
    with torch.no_grad():
        for i in (0, 4):
            expected = task(data[i]["image"][None]).argmax(1)[0].numpy()
            with Image.open(tmp_path / "pred" / names[i]) as im:
                np.testing.assert_array_equal(np.asarray(im), expected)
    assert "test/iiou" in trainer.callback_metrics and "test/miou" in trainer.callback_metrics
