import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from pixelwise.data.datamodule import DataModule
from pixelwise.data.synthetic_edges import SyntheticEdges
from pixelwise.nets.hed import HED
from pixelwise.nets.unet_edges import UNetEdges
from pixelwise.tasks.edges import EdgesTask, pad_annotations

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "conf")


def item_mean_loss(logit, target, weight, beta):
    """One (image, annotation) item: the weighted pixel mean of the seed's cost, in float64."""
    s, t, w = logit.double(), target.double(), weight.double()
    cost = (1 - beta) * t * F.softplus(-s) + beta * (1 - t) * F.softplus(s)
    return float((w * cost).sum().detach() / w.sum())


def task(net=None, **kw):
    net = net or UNetEdges(base_channels=4, depth=2)
    return EdgesTask(net, optimizer=partial(torch.optim.AdamW, lr=1e-3), **kw)


def two_item_batch():
    g = torch.Generator().manual_seed(0)
    t0 = (torch.rand(3, 8, 8, generator=g) < 0.2).float()
    t1 = (torch.rand(1, 8, 8, generator=g) < 0.2).float()
    w0, w1 = torch.ones(3, 8, 8), (torch.rand(1, 8, 8, generator=g) > 0.3).float()
    return {
        "image": torch.rand(2, 3, 8, 8, generator=g),
        "targets": [t0, t1],
        "weights": [w0, w1],
        "edges": [t0.bool(), t1.bool()],
    }


class TestPadAnnotations:
    def test_pads_with_zero_weight(self):
        targets = [torch.ones(3, 2, 2), torch.ones(1, 2, 2)]
        weights = [torch.ones(3, 2, 2), torch.full((1, 2, 2), 0.5)]
        t, w = pad_annotations(targets, weights)
        assert t.shape == w.shape == (2, 3, 2, 2)
        assert w[1].sum(dim=(1, 2)).tolist() == [2.0, 0.0, 0.0] and w[0].sum() == 12
        assert t[1, 1:].sum() == 0


class TestEdgesTaskLoss:
    def test_each_annotation_is_an_item_and_padding_is_not(self):
        batch = two_item_batch()
        model = task(beta=0.1, side_weight=[0.5, 1.0, 2.0], fuse_weight=3.0)
        outputs = model(batch["image"])
        loss, parts = model._loss(outputs, batch)
        weights = [0.5, 1.0, 2.0, 3.0]
        expected = 0.0
        for out, wj in zip(outputs, weights):
            items = [
                item_mean_loss(out[0, 0], batch["targets"][0][k], batch["weights"][0][k], 0.1)
                for k in range(3)
            ]
            items.append(
                item_mean_loss(out[1, 0], batch["targets"][1][0], batch["weights"][1][0], 0.1)
            )
            expected += wj * sum(items) / 4  # 4 (image, annotation) items, not 2 x 3
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        assert len(parts) == 4

    def test_dataset_beta_is_counted_once_over_the_training_items(self):
        items = [
            {"targets": torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), "weights": torch.ones(1, 2, 2)},
            {
                "targets": torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]),
                "weights": torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]),
            },
        ]
        assert task(beta_samples=10).count_dataset_beta(items) == pytest.approx(3 / 6)
        assert task(beta_samples=1).count_dataset_beta(items) == pytest.approx(1 / 4)

    def test_without_a_count_the_batch_fraction_stands_in(self):
        model = task()
        assert model.loss_beta() == "batch"
        model.dataset_beta.fill_(0.3), model.dataset_beta_ready.fill_(True)
        assert model.loss_beta() == pytest.approx(0.3)
        assert task(beta="image").loss_beta() == "image" and task(beta=0.2).loss_beta() == 0.2

    def test_eval_step_returns_probabilities_and_annotations(self):
        batch = two_item_batch()
        model = task()
        model.log = lambda *a, **k: None  # no trainer attached
        out = model.validation_step(batch, 0)
        fused = model(batch["image"])[-1][:, 0].sigmoid()
        assert out.preds.shape == (2, 8, 8) and torch.allclose(out.preds, fused)
        assert out.sides.shape == (2, 3, 8, 8) and 0 <= out.sides.min() <= out.sides.max() <= 1
        assert out.edges is batch["edges"]

    def test_bad_options(self):
        with pytest.raises(ValueError, match="task.beta='pixel'"):
            task(beta="pixel")
        with pytest.raises(ValueError, match="task.beta=1.5"):
            task(beta=1.5)
        with pytest.raises(ValueError, match="task.reduction='max'"):
            task(reduction="max")
        with pytest.raises(
            ValueError, match="task.side_weight has 2 values but the net has 3 side outputs"
        ):
            task(side_weight=[1.0, 1.0]).output_weights(4)


class TestEdgesTaskFit:
    def test_fast_dev_run_counts_dataset_beta_and_trains(self, tmp_path):
        torch.manual_seed(0)
        make = partial(SyntheticEdges, size=(32, 32), length=4, annotators=3)
        dm = DataModule(
            train=partial(make, split="train"),
            val=partial(make, split="val"),
            batch_size=2,
            list_keys=["edges", "targets", "weights"],
        )
        model = task(beta_samples=4)
        before = [p.detach().clone() for p in model.parameters()]
        trainer = L.Trainer(
            fast_dev_run=True,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        trainer.fit(model, datamodule=dm)
        ds = make(split="train")
        edges = sum(float(ds[i]["targets"].sum()) for i in range(4))
        pixels = sum(ds[i]["targets"].numel() for i in range(4))
        assert bool(model.dataset_beta_ready)
        assert model.dataset_beta.item() == pytest.approx(edges / pixels, rel=1e-5)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


class TestConfigs:
    def compose(self, overrides):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose("train", overrides=overrides)

    def test_task_edges_defaults_to_unet_edges_on_synthetic_edges(self):
        cfg = self.compose(["task=edges"])
        assert cfg.model._target_.endswith("UNetEdges")
        assert cfg.data.train._target_.endswith("SyntheticEdges")
        assert cfg.optimized_metric == "val/ods_approx"
        assert (
            cfg.callbacks.edge_metrics.val_approximate
            and not cfg.callbacks.edge_metrics.test_approximate
        )

    def test_task_edges_model_hed_is_valid_and_runs(self):
        cfg = self.compose(["task=edges", "model=hed", "model.base_channels=2"])
        net = instantiate(cfg.model)
        assert isinstance(net, HED)
        model = instantiate(cfg.task, net=net)
        outputs = model(torch.rand(1, 3, 20, 28))
        assert len(outputs) == 6 and model.output_weights(6) == [1.0] * 6

    def test_hed_bsds500_experiment_is_the_paper_recipe(self):
        cfg = self.compose(["experiment=hed_bsds500", "paths.weights_dir=/r/weights"])
        assert (
            cfg.model._target_.endswith("HED")
            and cfg.model.pretrained == "/r/weights/vgg16-397923af.pth"
        )
        opt = cfg.task.optimizer
        assert (opt._target_, opt.lr, opt.momentum, opt.weight_decay) == (
            "torch.optim.SGD",
            1e-6,
            0.9,
            2e-4,
        )
        assert cfg.trainer.accumulate_grad_batches * cfg.data.batch_size == 10
        assert (cfg.task.scheduler.step_size, cfg.task.scheduler.gamma, cfg.trainer.max_steps) == (
            5000,
            0.1,
            10000,
        )
        assert cfg.data.train._target_.endswith("EdgePairList")
        assert cfg.data.test._target_.endswith("BSDS500")


TINY_EDGES = [
    "task=edges",
    "data.train.length=8",
    "data.val.length=3",
    "data.test.length=5",
    "data.train.size=[32,48]",
    "data.batch_size=4",
    "data.eval_batch_size=2",
    "data.num_workers=0",
    "model.base_channels=4",
    "model.depth=2",
    "trainer.max_epochs=1",
    "logger=csv",
]


def run_script(script, args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_train_then_evaluate_writes_one_png_per_test_image_and_metrics(tmp_path):
    run_script("train.py", [*TINY_EDGES, f"hydra.run.dir={tmp_path / 'train'}"], tmp_path)
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert 0 <= trained["val/ods_approx"] <= 1 and 0 <= trained["test/ods"] <= 1
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    run_script("evaluate.py", [*TINY_EDGES, f"ckpt_path={ckpt}", f"hydra.run.dir={out}"], tmp_path)
    pngs = sorted((out / "edges_png").glob("*.png"))
    assert [p.stem for p in pngs] == [f"test_{i:05d}" for i in range(5)]
    png = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (32, 48)
    metrics = json.loads((out / "metrics.json").read_text())
    # Same weights, same test set: evaluate.py reproduces the test metrics of the training run.
    assert metrics["test/ods"] == pytest.approx(trained["test/ods"], abs=1e-6)
    assert (out / "test_pr_curve.csv").is_file()
