"""BatchNorm folded into the convs, written in the official superpoint_v1.pth layout and loaded
into a plain re-implementation of the official network (magicleap SuperPointPretrainedNetwork)."""

from __future__ import annotations

import pytest
import torch
from skimage import data as skdata
from torch import nn

from pixelwise.nets.superpoint import SuperPointNet, superpoint_from_file
from pixelwise.nets.superpoint_official import (
    fold_batch_norm,
    main,
    official_state_dict,
    save_official_weights,
)
from pixelwise.pretrained import weights_path


class OfficialSuperPointNet(nn.Module):
    """The official demo's SuperPointNet, line for line (its widths as arguments)."""

    def __init__(self, c1=64, c2=64, c3=128, c4=128, c5=256, d1=256):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv1a = nn.Conv2d(1, c1, kernel_size=3, stride=1, padding=1)
        self.conv1b = nn.Conv2d(c1, c1, kernel_size=3, stride=1, padding=1)
        self.conv2a = nn.Conv2d(c1, c2, kernel_size=3, stride=1, padding=1)
        self.conv2b = nn.Conv2d(c2, c2, kernel_size=3, stride=1, padding=1)
        self.conv3a = nn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1)
        self.conv3b = nn.Conv2d(c3, c3, kernel_size=3, stride=1, padding=1)
        self.conv4a = nn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1)
        self.conv4b = nn.Conv2d(c4, c4, kernel_size=3, stride=1, padding=1)
        self.convPa = nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1)
        self.convPb = nn.Conv2d(c5, 65, kernel_size=1, stride=1, padding=0)
        self.convDa = nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1)
        self.convDb = nn.Conv2d(c5, d1, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        x = self.relu(self.conv1a(x))
        x = self.relu(self.conv1b(x))
        x = self.pool(x)
        x = self.relu(self.conv2a(x))
        x = self.relu(self.conv2b(x))
        x = self.pool(x)
        x = self.relu(self.conv3a(x))
        x = self.relu(self.conv3b(x))
        x = self.pool(x)
        x = self.relu(self.conv4a(x))
        x = self.relu(self.conv4b(x))
        cPa = self.relu(self.convPa(x))
        semi = self.convPb(cPa)
        cDa = self.relu(self.convDa(x))
        desc = self.convDb(cDa)
        dn = torch.norm(desc, p=2, dim=1)
        desc = desc.div(torch.unsqueeze(dn, 1))
        return semi, desc


def camera(size: int = 128) -> torch.Tensor:
    """skimage's camera (a real photograph), [1,1,size,size] in [0, 1] (a multiple of 8: no padding)."""
    image = torch.from_numpy(skdata.camera()).float()[None, None] / 255.0
    return nn.functional.interpolate(image, size=(size, size), mode="area")


def randomised_bn_net(**kwargs) -> SuperPointNet:
    """A BatchNorm SuperPointNet whose BN layers carry non-trivial statistics and affine parameters."""
    torch.manual_seed(0)
    net = SuperPointNet(batch_norm=True, **kwargs)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c) * 0.1)
                module.running_var.copy_(torch.rand(c) * 2 + 0.2)
                module.weight.copy_(torch.rand(c) + 0.5)
                module.bias.copy_(torch.randn(c) * 0.1)
    return net.eval()


def official_outputs(state: dict, image: torch.Tensor, **widths):
    official = OfficialSuperPointNet(**widths)
    assert list(state) == list(official.state_dict())  # the official keys, in the official order
    official.load_state_dict(state, strict=True)
    with torch.no_grad():
        return official.eval()(image)


def ours(net: SuperPointNet, image: torch.Tensor):
    with torch.no_grad():
        out = net.eval()(image)
    return out["logits"], nn.functional.normalize(out["descriptors"], dim=1)


def test_folded_official_widths_match_the_official_network():
    net = randomised_bn_net()
    image = camera(128)
    semi, desc = official_outputs(official_state_dict(net, require_official_widths=True), image)
    logits, descriptors = ours(net, image)
    assert semi.shape == logits.shape == (1, 65, 16, 16)
    torch.testing.assert_close(semi, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(desc, descriptors, atol=1e-5, rtol=1e-5)


def test_shipped_superpoint_photos_loads_into_the_official_network_with_its_widths(tmp_path):
    net = superpoint_from_file(weights_path("superpoint_photos"))
    out = save_official_weights(weights_path("superpoint_photos"), tmp_path / "sp_v1.pth")
    state = torch.load(out, weights_only=True)
    assert not any(k.startswith("bn") for k in state)
    image = camera(160)
    semi, desc = official_outputs(state, image, c1=32, c2=32, c3=64, c4=64, c5=128, d1=256)
    logits, descriptors = ours(net, image)
    torch.testing.assert_close(semi, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(desc, descriptors, atol=1e-5, rtol=1e-5)
    # The official code's default widths cannot take it: said before writing anything.
    with pytest.raises(
        ValueError, match=r"channels=\(32, 32, 64, 64\) \(official \(64, 64, 128, 128\)\)"
    ):
        official_state_dict(net, require_official_widths=True)


def test_fold_is_the_eval_mode_net_and_leaves_it_untouched():
    net = randomised_bn_net(channels=(4, 4, 8, 8), head_channels=8, descriptor_dim=6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batch_norm(net)
    assert not folded.batch_norm and not folded.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    image = camera(64)
    with torch.no_grad():
        a, b = net(image), folded(image)
    for key in ("logits", "descriptors"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)


def test_net_without_batch_norm_is_copied_as_is():
    torch.manual_seed(1)
    net = SuperPointNet(channels=(4, 4, 8, 8), head_channels=8, descriptor_dim=6)
    state = official_state_dict(net)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_magicpoint_has_the_official_detector_keys_only():
    net = SuperPointNet(descriptor=False, batch_norm=True, channels=(4, 4, 8, 8), head_channels=8)
    state = official_state_dict(net)
    official = [k for k in OfficialSuperPointNet().state_dict() if not k.startswith("convD")]
    assert list(state) == official
    with pytest.raises(ValueError, match="no descriptor head"):
        official_state_dict(net, require_official_widths=True)


def test_command_line(tmp_path, capsys):
    out = main([str(weights_path("magicpoint_shapes")), str(tmp_path / "mp.pth")])
    assert out.is_file() and "wrote" in capsys.readouterr().out
    with pytest.raises(TypeError, match="expected a SuperPointNet"):
        fold_batch_norm(nn.Conv2d(1, 1, 1))
