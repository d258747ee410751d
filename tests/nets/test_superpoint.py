"""Tests of pixelwise.nets.superpoint: official state-dict layout, forward semantics, weight loading errors."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from pixelwise.nets.superpoint import SuperPointNet, load_superpoint_weights, magicpoint

# (name, shape) of every tensor in magicleap's superpoint_v1.pth, written out by hand from the
# SuperPointNet class of SuperPointPretrainedNetwork/demo_superpoint.py (c1..c5, d1 = 64, 64, 128, 128, 256, 256).
OFFICIAL = [
    ("conv1a.weight", (64, 1, 3, 3)), ("conv1a.bias", (64,)),
    ("conv1b.weight", (64, 64, 3, 3)), ("conv1b.bias", (64,)),
    ("conv2a.weight", (64, 64, 3, 3)), ("conv2a.bias", (64,)),
    ("conv2b.weight", (64, 64, 3, 3)), ("conv2b.bias", (64,)),
    ("conv3a.weight", (128, 64, 3, 3)), ("conv3a.bias", (128,)),
    ("conv3b.weight", (128, 128, 3, 3)), ("conv3b.bias", (128,)),
    ("conv4a.weight", (128, 128, 3, 3)), ("conv4a.bias", (128,)),
    ("conv4b.weight", (128, 128, 3, 3)), ("conv4b.bias", (128,)),
    ("convPa.weight", (256, 128, 3, 3)), ("convPa.bias", (256,)),
    ("convPb.weight", (65, 256, 1, 1)), ("convPb.bias", (65,)),
    ("convDa.weight", (256, 128, 3, 3)), ("convDa.bias", (256,)),
    ("convDb.weight", (256, 256, 1, 1)), ("convDb.bias", (256,)),
]  # fmt: skip


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g) * 0.05 for name, shape in OFFICIAL}


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor):
    """The demo's SuperPointNet.forward written with functional ops, without the descriptor normalisation."""

    def conv(name, t, relu=True):
        w = state[f"{name}.weight"]
        t = F.conv2d(t, w, state[f"{name}.bias"], padding=w.shape[-1] // 2)
        return F.relu(t) if relu else t

    for i, block in enumerate(("1", "2", "3", "4")):
        x = conv(f"conv{block}b", conv(f"conv{block}a", x))
        if i < 3:
            x = F.max_pool2d(x, 2, 2)
    return conv("convPb", conv("convPa", x), relu=False), conv(
        "convDb", conv("convDa", x), relu=False
    )


class TestStateDictLayout:
    def test_keys_and_shapes_are_official(self):
        sd = SuperPointNet(batch_norm=False).state_dict()
        assert [(k, tuple(v.shape)) for k, v in sd.items()] == OFFICIAL

    def test_official_file_loads_strict_and_computes_the_official_forward(self, tmp_path):
        state = official_state()
        path = tmp_path / "superpoint_v1.pth"
        torch.save(state, path)
        net = SuperPointNet()
        net.load_state_dict(torch.load(path), strict=True)
        net2 = load_superpoint_weights(SuperPointNet(), path)
        x = torch.rand(2, 1, 32, 48, generator=torch.Generator().manual_seed(1))
        semi, desc = official_forward(state, x)
        with torch.no_grad():
            out, out2 = net(x), net2(x)
        torch.testing.assert_close(out["logits"], semi, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            out["descriptors"], desc, atol=1e-5, rtol=1e-4
        )  # raw, not normalised
        torch.testing.assert_close(out2["logits"], out["logits"])
        # model.pretrained=PATH: the same file through the constructor (what Hydra instantiates).
        net3 = SuperPointNet(pretrained=str(path))
        for key, value in state.items():
            assert torch.equal(net3.state_dict()[key], value), key

    def test_magicpoint_and_widths(self):
        mp = magicpoint()
        assert not any(k.startswith("convD") for k in mp.state_dict())
        assert [k for k, _ in OFFICIAL if not k.startswith("convD")] == list(mp.state_dict())
        small = magicpoint(channels=(32, 32, 64, 64), head_channels=128)
        assert small.state_dict()["convPa.weight"].shape == (128, 64, 3, 3)
        assert set(small(torch.rand(1, 1, 16, 16))) == {"logits"}
        with pytest.raises(ValueError, match="no descriptor head"):
            magicpoint(descriptor=True)

    def test_batch_norm_adds_bn_layers(self):
        net = SuperPointNet(batch_norm=True, descriptor_dim=64)
        keys = net.state_dict().keys()
        for name in ("1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b", "Pa", "Da"):
            assert f"bn{name}.running_mean" in keys
        assert "bnPb.weight" not in keys
        out = net(torch.rand(2, 1, 16, 24))
        assert out["descriptors"].shape == (2, 64, 2, 3)
        out["logits"].sum().backward()


class TestForward:
    @pytest.mark.parametrize("h,w", [(120, 160), (100, 130), (7, 9)])
    def test_output_shapes_any_size(self, h, w):
        out = SuperPointNet(descriptor_dim=32)(torch.rand(2, 1, h, w))
        hc, wc = -(-h // 8), -(-w // 8)
        assert out["logits"].shape == (2, 65, hc, wc)
        assert out["descriptors"].shape == (2, 32, hc, wc)

    def test_odd_size_equals_replicate_padded_input(self):
        net = magicpoint().eval()
        x = torch.rand(1, 1, 21, 30, generator=torch.Generator().manual_seed(2))
        padded = torch.cat([x, x[:, :, -1:].expand(-1, -1, 3, -1)], 2)
        padded = torch.cat([padded, padded[:, :, :, -1:].expand(-1, -1, -1, 2)], 3)
        assert padded.shape == (1, 1, 24, 32)
        with torch.no_grad():
            torch.testing.assert_close(net(x)["logits"], net(padded)["logits"])

    def test_rgb_converted_with_one_warning(self):
        net = magicpoint().eval()
        rgb = torch.rand(1, 3, 16, 16)
        gray = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]
        with pytest.warns(UserWarning, match="3-channel"):
            a = net(rgb)["logits"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            b = net(rgb)["logits"]  # no second warning
        torch.testing.assert_close(a, net(gray)["logits"])
        torch.testing.assert_close(a, b)

    def test_bad_images(self):
        net = magicpoint()
        with pytest.raises(ValueError, match="1 \\(gray\\) or 3"):
            net(torch.rand(1, 2, 8, 8))
        with pytest.raises(TypeError, match="float"):
            net(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
        with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
            net(torch.rand(8, 8))


class TestLoadWeights:
    def save(self, tmp_path, state, name="w.pth"):
        path = tmp_path / name
        torch.save(state, path)
        return path

    def test_missing_and_extra_keys_listed(self, tmp_path):
        state = official_state()
        del state["conv3b.bias"]
        state["convX.weight"] = torch.zeros(1)
        with pytest.raises(ValueError, match="missing keys \\(1\\): conv3b.bias") as e:
            load_superpoint_weights(SuperPointNet(), self.save(tmp_path, state))
        assert "unexpected keys (1): convX.weight" in str(e.value)
        assert "w.pth" in str(e.value)

    def test_descriptor_dim_mismatch_named(self, tmp_path):
        path = self.save(tmp_path, official_state())
        with pytest.raises(
            ValueError, match="descriptor dimension: file has 256, net has descriptor_dim=128"
        ):
            load_superpoint_weights(SuperPointNet(descriptor_dim=128), path)
        with pytest.raises(ValueError, match="descriptor_dim=128"):
            SuperPointNet(descriptor_dim=128, pretrained=path)

    def test_superpoint_file_into_magicpoint(self, tmp_path):
        path = self.save(tmp_path, official_state())
        with pytest.raises(ValueError, match="ignore_descriptor=True"):
            load_superpoint_weights(magicpoint(), path)
        net = load_superpoint_weights(magicpoint(), path, ignore_descriptor=True)
        torch.testing.assert_close(net.convPb.weight, official_state()["convPb.weight"])
        # model.pretrained does the same for a net without descriptor head (config users cannot
        # pass ignore_descriptor), as MagicPoint.from_pretrained does.
        configured = magicpoint(pretrained=path)
        assert configured.state_dict().keys() == net.state_dict().keys()
        assert all(torch.equal(configured.state_dict()[k], v) for k, v in net.state_dict().items())
        with pytest.raises(ValueError, match="no descriptor head"):
            SuperPointNet(pretrained=self.save(tmp_path, magicpoint().state_dict()))

    def test_magicpoint_file_into_superpoint(self, tmp_path):
        path = self.save(tmp_path, magicpoint().state_dict())
        with pytest.raises(ValueError, match="no descriptor head"):
            load_superpoint_weights(SuperPointNet(), path)

    def test_module_prefix_and_bad_files(self, tmp_path):
        state = {f"module.{k}": v for k, v in official_state().items()}
        load_superpoint_weights(SuperPointNet(), self.save(tmp_path, state))
        with pytest.raises(FileNotFoundError, match="nope.pth"):
            load_superpoint_weights(SuperPointNet(), tmp_path / "nope.pth")
        (tmp_path / "junk.pth").write_text("not a checkpoint")
        with pytest.raises(ValueError, match="junk.pth"):
            load_superpoint_weights(SuperPointNet(), tmp_path / "junk.pth")
        ckpt = self.save(tmp_path, {"state_dict": official_state(), "epoch": 3}, "ckpt.pth")
        with pytest.raises(ValueError, match="state dict"):
            load_superpoint_weights(SuperPointNet(), ckpt)
