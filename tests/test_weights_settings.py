"""Settings that travel with a weights file (<name>.json beside <name>.pt)."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from pixelwise.errors import UserError
from pixelwise.pretrained import WEIGHTS_DIR, MagicPoint, SuperPoint
from pixelwise.weights_settings import apply_weights_settings, read_weights_settings


def cfg_for(path):
    return OmegaConf.create(
        {
            "model": {
                "pretrained": str(path),
                "channels": [64, 64, 128, 128],
                "head_channels": 256,
            },
            "task": {"detection_threshold": 0.015, "nms_radius": 4},
        }
    )


def sidecar(tmp_path, settings):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    (tmp_path / "w.json").write_text(json.dumps(settings))
    return weights


def test_settings_apply_unless_the_command_line_sets_the_key(tmp_path):
    weights = sidecar(
        tmp_path,
        {
            "model": {"channels": [32, 32, 64, 64], "batch_norm": True},
            "extraction": {"threshold": 0.005},
        },
    )
    cfg = cfg_for(weights)
    applied = apply_weights_settings(cfg, ["task=superpoint", "model.pretrained=w.pt"])
    assert applied == ["model.channels=[32, 32, 64, 64]", "task.detection_threshold=0.005"]
    assert cfg.model.channels == [32, 32, 64, 64] and cfg.task.detection_threshold == 0.005
    assert "batch_norm" not in cfg.model  # a key the config does not have is left alone
    cfg = cfg_for(weights)
    assert apply_weights_settings(cfg, ["task.detection_threshold=0.1"]) == [
        "model.channels=[32, 32, 64, 64]"
    ]
    assert cfg.task.detection_threshold == 0.015


def test_no_weights_or_no_sidecar_changes_nothing(tmp_path):
    bare = tmp_path / "bare.pt"
    bare.write_bytes(b"")
    assert apply_weights_settings(cfg_for(bare)) == []
    assert apply_weights_settings(OmegaConf.create({"model": {"pretrained": None}})) == []
    assert read_weights_settings(bare) == {}


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not a readable weights settings JSON"),
        ('{"extras": {}}', r"unknown sections \['extras'\]"),
        ('{"extraction": {"thresh": 0.1}}', r"unknown extraction keys \['thresh'\]"),
    ],
)
def test_bad_sidecars_name_the_file(tmp_path, content, match):
    (tmp_path / "w.json").write_text(content)
    with pytest.raises(UserError, match=match) as err:
        read_weights_settings(tmp_path / "w.pt")
    assert str(tmp_path / "w.json") in str(err.value)


def test_shipped_weights_extract_with_their_own_threshold():
    assert SuperPoint.from_pretrained("superpoint_photos").extraction.threshold == 0.005
    assert MagicPoint.from_pretrained("magicpoint_shapes").extraction.threshold == 0.015
    assert MagicPoint.from_pretrained("magicpoint_photos").extraction.threshold == 0.005
    net = SuperPoint.from_pretrained("superpoint_photos")
    assert net.extract(torch.rand(1, 1, 64, 80))[0]["scores"].min() >= 0.005


def test_shipped_sidecars_describe_their_files():
    for name in ("superpoint_photos", "magicpoint_shapes", "magicpoint_photos"):
        settings = read_weights_settings(WEIGHTS_DIR / f"{name}.pt")
        state = torch.load(WEIGHTS_DIR / f"{name}.pt", weights_only=True)
        widths = [int(state[f"conv{i}a.weight"].shape[0]) for i in range(1, 5)]
        assert settings["model"]["channels"] == widths
        assert settings["model"]["head_channels"] == int(state["convPa.weight"].shape[0])
        assert (WEIGHTS_DIR / settings["card"]).is_file()


def test_evaluate_takes_the_widths_from_the_weights_file(tmp_path):
    """task=magicpoint's default model is 64-wide; the shipped file's sidecar makes it 32-wide."""
    from tests.integration.conftest import read_metrics, run_script

    out = tmp_path / "eval"
    run_script(
        "evaluate.py",
        [
            "task=magicpoint",
            "model.pretrained=${paths.weights_dir}/magicpoint_shapes.pt",
            "data.test.length=4",
            "data.num_workers=0",
            "task.baselines=[]",
            "logger=csv",
            f"hydra.run.dir={out}",
        ],
        tmp_path,
    )
    log = (out / "evaluate.log").read_text()
    assert "settings of model.pretrained's weights: model.channels=[32, 32, 64, 64]" in log
    assert "test/map" in read_metrics(out)
