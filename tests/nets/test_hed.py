import pytest
import torch
import torch.nn.functional as F

from pixelwise.nets.hed import HED, SIDE_TAPS, load_vgg16_features, vgg16_trunk

# torchvision.models.vgg16().features.state_dict() keys (conv layers at these indices).
TORCHVISION_VGG16_FEATURE_KEYS = [
    f"{i}.{p}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) for p in ("weight", "bias")
]
VGG16_WIDTHS = {0: 64, 2: 64, 5: 128, 7: 128, 10: 256, 12: 256, 14: 256,
                17: 512, 19: 512, 21: 512, 24: 512, 26: 512, 28: 512}  # fmt: skip


def torchvision_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision VGG16's keys and shapes (features + classifier)."""
    g = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for i, cout in VGG16_WIDTHS.items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.01
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
        cin = cout
    state["classifier.0.weight"] = torch.zeros(4, 4)  # stands in for the fc layers HED drops
    state["classifier.0.bias"] = torch.zeros(4)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-format VGG16 state dict saved to a file (made once: it is 60 MB)."""
    state = torchvision_vgg16_state()
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.save(state, path)
    return path, state


class TestHED:
    @pytest.mark.parametrize("size", [(32, 32), (37, 45), (17, 9)])
    def test_six_logit_maps_of_input_size(self, size):
        net = HED(base_channels=2)
        outs = net(torch.rand(2, 3, *size))
        assert len(outs) == 6 == net.num_outputs
        assert all(o.shape == (2, 1, *size) for o in outs)

    def test_trunk_has_torchvision_vgg16_feature_keys(self):
        trunk = HED(base_channels=2).features
        assert list(trunk.state_dict()) == TORCHVISION_VGG16_FEATURE_KEYS
        widths = {
            k: m.out_channels for k, m in enumerate(vgg16_trunk(64)) if hasattr(m, "out_channels")
        }
        assert widths == VGG16_WIDTHS

    def test_fusion_is_initialised_to_a_fifth_of_each_side(self):
        torch.manual_seed(0)
        net = HED(base_channels=2).eval()
        for conv in net.side:  # the paper's zero side init would make every map 0
            torch.nn.init.normal_(conv.weight)
        outs = net(torch.rand(1, 3, 24, 24))
        assert torch.allclose(outs[-1], 0.2 * sum(outs[:5]), atol=1e-6)
        assert torch.all(net.fuse.weight == 0.2)

    def test_side_maps_are_1x1_convs_of_the_stage_ends_upsampled_bilinearly(self):
        torch.manual_seed(0)
        net = HED(base_channels=2, normalize=False).eval()
        for conv in net.side:
            torch.nn.init.normal_(conv.weight)
        x = torch.rand(1, 3, 32, 48)
        outs = net(x)
        for k, tap in enumerate(SIDE_TAPS):
            feat = net.features[: tap + 1](x)
            expected = F.interpolate(
                net.side[k](feat), size=(32, 48), mode="bilinear", align_corners=False
            )
            assert torch.allclose(outs[k], expected, atol=1e-6)
        # Stage strides 1, 2, 4, 8, 16: side 5 is computed on a 2x3 map.
        assert net.features[:29](x).shape[-2:] == (2, 3)

    def test_side1_receptive_field_is_5x5(self):
        torch.manual_seed(0)
        net = HED(base_channels=2).eval()
        torch.nn.init.normal_(net.side[0].weight)
        x = torch.rand(1, 3, 20, 20)
        y = x.clone()
        y[0, :, 10, 10] += 1.0
        changed = (net(x)[0] - net(y)[0]).abs()[0, 0] > 0
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert rows.min() >= 8 and rows.max() <= 12 and cols.min() >= 8 and cols.max() <= 12
        assert changed[10, 10]

    def test_imagenet_normalisation(self):
        net = HED(base_channels=2).eval()
        raw = HED(base_channels=2, normalize=False).eval()
        raw.load_state_dict(net.state_dict())
        for a, b in zip(net.side, raw.side):
            torch.nn.init.constant_(a.weight, 1.0), torch.nn.init.constant_(b.weight, 1.0)
        x = torch.rand(1, 3, 16, 16)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert torch.allclose(net(x)[-1], raw((x - mean) / std)[-1], atol=1e-5)

    def test_pretrained_loads_a_torchvision_state_dict_file(self, vgg_file, tmp_path):
        path, state = vgg_file
        net = HED(pretrained=str(path))
        assert torch.equal(net.features[28].weight, state["features.28.weight"])
        assert torch.equal(net.features[0].bias, state["features.0.bias"])
        # A Lightning-style {"state_dict": ...} wrapper works too.
        torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
        trunk = vgg16_trunk(64)
        load_vgg16_features(trunk, tmp_path / "wrapped.pth")
        assert torch.equal(trunk[5].weight, state["features.5.weight"])

    def test_pretrained_errors_name_the_file_and_key(self, vgg_file, tmp_path):
        path, state = vgg_file
        with pytest.raises(FileNotFoundError, match="model.pretrained=.*nothere.pth: no such file"):
            HED(base_channels=2, pretrained=tmp_path / "nothere.pth")
        partial = {k: v for k, v in state.items() if k != "features.24.weight"}
        torch.save(partial, tmp_path / "partial.pth")
        with pytest.raises(KeyError, match="partial.pth: no 'features.24.weight'"):
            load_vgg16_features(vgg16_trunk(64), tmp_path / "partial.pth")
        with pytest.raises(ValueError, match=r"'features.0.weight' has shape \(64, 3, 3, 3\)"):
            HED(base_channels=8, pretrained=path)
        (tmp_path / "junk.pth").write_text("not a checkpoint")
        with pytest.raises(ValueError, match="junk.pth: cannot read"):
            HED(base_channels=2, pretrained=tmp_path / "junk.pth")

    def test_bad_input_shape(self):
        with pytest.raises(ValueError, match=r"expected images \[B,3,H,W\], got \(1, 1, 8, 8\)"):
            HED(base_channels=2)(torch.rand(1, 1, 8, 8))

    def test_gradients_reach_every_parameter(self):
        net = HED(base_channels=2)
        for conv in net.side:
            torch.nn.init.normal_(conv.weight)
        sum(o.sum() for o in net(torch.rand(1, 3, 32, 32))).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
