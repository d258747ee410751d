"""Net2WiderNet for SuperPoint/MagicPoint: the widened net computes the narrow net's function."""

import pytest
import torch

from pixelwise.nets.superpoint import SuperPointNet, superpoint_from_file
from pixelwise.nets.superpoint_widen import main, widen_superpoint


def _trained_like(net: SuperPointNet) -> SuperPointNet:
    """Random weights and batch-norm statistics that are not the defaults (mean 0, var 1, affine 1/0)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen) * 0.3)
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return net.eval()


@pytest.mark.parametrize("descriptor", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_widening_without_noise_keeps_the_outputs(descriptor, batch_norm):
    narrow = _trained_like(
        SuperPointNet(
            descriptor=descriptor,
            batch_norm=batch_norm,
            channels=(4, 5, 6, 7),
            head_channels=8,
            descriptor_dim=16,
        )
    )
    # Uneven factors (5 -> 12: channels 0, 1 have three copies, the rest two) test the weight split.
    wide = widen_superpoint(narrow, [8, 12, 6, 10], 13, noise=0.0)
    assert [
        wide.conv1a.out_channels,
        wide.conv2a.out_channels,
        wide.conv3a.out_channels,
        wide.conv4a.out_channels,
        wide.convPa.out_channels,
    ] == [8, 12, 6, 10, 13]
    images = torch.rand(2, 1, 40, 48, generator=torch.Generator().manual_seed(0))
    before, after = narrow(images), wide(images)
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=1e-5, atol=1e-5)


def test_noise_breaks_the_copies_apart_and_is_seeded():
    narrow = _trained_like(
        SuperPointNet(descriptor=False, batch_norm=True, channels=(4, 4, 4, 4), head_channels=4)
    )
    a = widen_superpoint(narrow, [8, 8, 8, 8], 8, noise=0.05, seed=1)
    b = widen_superpoint(narrow, [8, 8, 8, 8], 8, noise=0.05, seed=1)
    # The old channels are untouched; each copy differs from its original.
    torch.testing.assert_close(
        a.conv2a.weight[:4], narrow.conv2a.weight.repeat(1, 2, 1, 1)[:, :8] / 2
    )
    assert not torch.equal(a.conv2a.weight[4:], a.conv2a.weight[:4])
    torch.testing.assert_close(a.state_dict(), b.state_dict())


def test_narrowing_and_bad_arguments_are_refused():
    narrow = SuperPointNet(descriptor=False, channels=(4, 4, 8, 8), head_channels=8)
    with pytest.raises(ValueError, match=r"cannot narrow.*3: 8 -> 4.*channels=\[4, 4, 8, 8\]"):
        widen_superpoint(narrow, [4, 4, 4, 8], 8)
    with pytest.raises(ValueError, match="4 widths"):
        widen_superpoint(narrow, [4, 4, 8], 8)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        widen_superpoint(narrow, [4, 4, 8, 8], 8, noise=-1)


def test_command_line_writes_loadable_weights(tmp_path, capsys):
    narrow = _trained_like(
        SuperPointNet(descriptor=False, batch_norm=True, channels=(4, 4, 8, 8), head_channels=8)
    )
    torch.save(narrow.state_dict(), tmp_path / "narrow.pt")
    main(
        [
            str(tmp_path / "narrow.pt"),
            str(tmp_path / "out" / "wide.pt"),
            "--channels",
            "8",
            "8",
            "16",
            "16",
            "--head-channels",
            "16",
            "--noise",
            "0",
        ]
    )
    assert "channels [8, 8, 16, 16], head 16" in capsys.readouterr().out
    wide = superpoint_from_file(tmp_path / "out" / "wide.pt").eval()
    images = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(
        wide(images)["logits"], narrow(images)["logits"], rtol=1e-5, atol=1e-5
    )
