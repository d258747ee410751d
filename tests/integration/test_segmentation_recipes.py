"""experiment=unet_voc / unet_cityscapes compose, their augmentations run, and data configs match the label tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pixelwise.data import cityscapes_labels as cs
from pixelwise.data.label_io import segmentation_item
from pixelwise.data.voc import VOCSegmentation
from pixelwise.tasks.optim import configure
from tests.integration.conftest import REPO, read_metrics, run_script
from tests.integration.dataset_trees import write_cityscapes

CONF = str(REPO / "conf")
# recipe -> (dataset class, crop (h, w), dummy image size (h, w))
RECIPES = {
    "unet_cityscapes": ("pixelwise.data.cityscapes.Cityscapes", (512, 1024), (256, 512)),
    "unet_voc": ("pixelwise.data.voc.VOCSegmentation", (320, 320), (375, 500)),
}


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
class TestRecipe:
    def test_composes_to_a_full_gpu_recipe(self, recipe):
        cfg = compose_train([f"experiment={recipe}"])
        dataset, crop, _ = RECIPES[recipe]
        assert cfg.data.train._target_ == dataset and cfg.data.val._target_ == dataset
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "16-mixed"
        assert cfg.task.class_weighting == "median_frequency"
        assert cfg.task.scheduler._target_ == "torch.optim.lr_scheduler.PolynomialLR"
        assert cfg.model.num_classes == cfg.data.num_classes == len(cfg.data.class_names)
        assert cfg.callbacks.segmentation_metrics._target_.endswith("SegmentationMetrics")
        assert cfg.callbacks.segmentation_writer.enabled is False
        crop_op = [
            t for t in cfg.data.train.transform.transforms if t._target_.endswith("RandomCrop")
        ]
        assert (crop_op[0].height, crop_op[0].width) == crop

    def test_class_weighting_is_selectable(self, recipe):
        cfg = compose_train([f"experiment={recipe}", "task.class_weighting=inverse_frequency"])
        assert cfg.task.class_weighting == "inverse_frequency"

    def test_augmentation_runs_on_a_dummy_image(self, recipe):
        cfg = compose_train([f"experiment={recipe}"])
        transform = instantiate(cfg.data.train.transform)
        _, (ch, cw), (h, w) = RECIPES[recipe]
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.where(rng.random((h, w)) < 0.5, 3, 5).astype(np.uint8)
        instances = np.zeros((h, w), dtype=np.int32)
        instances[h // 4 : h // 2, w // 4 : w // 2] = 7
        mask[h // 4 : h // 2, w // 4 : w // 2] = 1
        for _ in range(3):  # three random draws of scale, crop, flip
            item = segmentation_item(image, mask, instances, Path("dummy.png"), transform)
            assert item["image"].shape == (3, ch, cw) and item["image"].dtype == torch.float32
            assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
            assert item["mask"].shape == (ch, cw) and item["instances"].shape == (ch, cw)
            # nearest-neighbour masks: only the original labels, plus void padding
            assert set(item["mask"].unique().tolist()) <= {1, 3, 5, 255}
            assert set(item["instances"].unique().tolist()) <= {0, 7}
            assert (item["instances"][item["mask"] == 255] == 0).all()
            assert (item["mask"][item["instances"] == 7] == 1).all()

    def test_poly_schedule_spans_the_run(self, recipe):
        cfg = compose_train([f"experiment={recipe}"])
        task = instantiate(cfg.task, net=torch.nn.Linear(1, 1))
        params = [torch.nn.Parameter(torch.zeros(1))]
        out = configure(params, task.optimizer_factory, task.scheduler_factory, total_steps=100)
        opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
        lr0 = cfg.task.optimizer.lr
        for _ in range(50):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(lr0 * (1 - 50 / 100) ** 0.9)


class TestDataFacts:
    @pytest.mark.parametrize("name", ["cityscapes", "kitti"])
    def test_cityscapes_label_table_in_the_config(self, name):
        data = OmegaConf.to_container(compose_train([f"data={name}"]).data)
        assert data["instance_classes"] == list(cs.INSTANCE_CLASSES)
        assert data["class_to_category"] == list(cs.CLASS_TO_CATEGORY)
        assert data["category_names"] == list(cs.CATEGORY_NAMES)
        assert data["class_names"] == list(cs.CLASS_NAMES)
        assert data["palette"] == cs.PALETTE.tolist()
        assert data["mean_instance_size"] == cs.CITYSCAPES_MEAN_INSTANCE_SIZE

    def test_voc_facts_in_the_config(self):
        data = OmegaConf.to_container(compose_train(["data=voc"]).data)
        assert data["instance_classes"] == list(VOCSegmentation.instance_classes)
        assert data["class_names"] == list(VOCSegmentation.class_names)
        assert data["palette"] == VOCSegmentation.palette.tolist()


@pytest.mark.slow
def test_cityscapes_recipe_runs_as_is_on_cpu(tmp_path):
    """The recipe itself (augmentation, class weights, poly schedule), shrunk only in size and device."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"train": 2, "val": 2})
    out = tmp_path / "run"
    run_script(
        "train.py",
        [
            "experiment=unet_cityscapes",
            f"data.root={root}",
            "trainer=cpu",
            "trainer.precision=32-true",
            "trainer.max_steps=1",
            "trainer.check_val_every_n_epoch=1",
            "model.base_channels=4",
            "data.batch_size=1",
            "data.num_workers=0",
            "data.pin_memory=false",
            "logger=csv",
            f"hydra.run.dir={out}",
        ],
        tmp_path,
    )
    metrics = read_metrics(out)
    assert {"val/miou", "test/miou", "test/iiou", "test/category_miou"} <= set(metrics)
