"""task=detection end to end: train briefly, export synthetic scenes as a COCO dataset, evaluate
the checkpoint on it with data=coco_synthetic, and check metrics.json against pycocotools' own
COCOeval on the written detections.json and the exported instances JSON; DDP equals one process."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.data.coco_export import export_coco
from tests.integration.conftest import read_metrics, run_script

TINY_DETECTION = [
    "task=detection",
    "data.train.length=32",
    "data.val.length=8",
    "data.test.length=8",
    "data.batch_size=8",
    "data.num_workers=0",
    "model.base_channels=4",
    "model.fpn_channels=8",
    "trainer.max_epochs=2",
    "task.optimizer.lr=0.01",
    "logger=csv",
]
KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection")
    out = root / "train"
    run_script("train.py", [*TINY_DETECTION, f"hydra.run.dir={out}"], root)
    export_coco(root / "coco", split="val", count=12)
    return root, out / "checkpoints" / "last.ckpt"


def _evaluate(root, ckpt, name, *extra):
    out = root / name
    run_script(
        "evaluate.py",
        [
            "task=detection",
            "data=coco_synthetic",
            f"data.root={root / 'coco'}",
            "data.num_workers=0",
            "data.eval_batch_size=5",
            "model.base_channels=4",
            "model.fpn_channels=8",
            "logger=csv",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={out}",
            *extra,
        ],
        root,
    )
    return out


def test_metrics_json_equals_cocoeval_on_detections_json(trained):
    root, ckpt = trained
    out = _evaluate(root, ckpt, "eval")
    metrics = read_metrics(out)
    detections = json.loads((out / "detections.json").read_text())
    assert detections and {"image_id", "category_id", "bbox", "score"} <= set(detections[0])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "coco" / "annotations" / "instances_val2017.json"))
        ev = COCOeval(gt, gt.loadRes(str(out / "detections.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert {im["id"] for im in gt.dataset["images"]} >= {d["image_id"] for d in detections}
    for key, want in zip(KEYS, ev.stats):
        if want >= 0:
            assert metrics[f"test/{key}"] == pytest.approx(want, abs=1e-4), key


@pytest.mark.slow
def test_ddp_cpu_equals_one_process(trained):
    root, ckpt = trained
    one = read_metrics(_evaluate(root, ckpt, "one"))
    two = read_metrics(_evaluate(root, ckpt, "ddp", "trainer=ddp_cpu"))
    for key in ("test/map", "test/map_50", "test/mar_100"):
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
