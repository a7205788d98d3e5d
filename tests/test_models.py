from __future__ import annotations

import pytest
import torch
import torchvision

from alexnet_lightning.errors import UserError
from alexnet_lightning.models.alexnet import AlexNet, build_alexnet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("head", ["fc", "gap"])
@pytest.mark.parametrize(
    ("stem", "size"),
    [("small", 28), ("small", 32), ("small", 64), ("imagenet", 64), ("imagenet", 224), ("imagenet", 227)],
)
def test_output_shapes(stem: str, size: int, head: str) -> None:
    model = AlexNet(num_classes=7, in_channels=1, stem=stem, head=head).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 7)


@pytest.mark.parametrize("size", [224, 227])
def test_original_layout_shapes(size: int) -> None:
    model = build_alexnet(num_classes=3, layout="original", norm="lrn", init="kaiming").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 3)
    assert any(isinstance(m, torch.nn.LocalResponseNorm) for m in model.modules())
    assert model.features[0].out_channels == 96


def test_torchvision_layout_matches_torchvision_exactly() -> None:
    ours = AlexNet(num_classes=1000)
    theirs = torchvision.models.alexnet(num_classes=1000)
    assert n_params(ours) == n_params(theirs) == 61_100_840
    # same parameter names and shapes, so torchvision's weights load without renaming
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_gap_head_has_at_least_90_percent_fewer_parameters() -> None:
    assert n_params(AlexNet(num_classes=10, head="gap")) <= 0.1 * n_params(AlexNet(num_classes=10, head="fc"))


def test_batchnorm_and_leaky_relu_variants() -> None:
    model = build_alexnet(num_classes=2, norm="batchnorm", activation="leaky_relu", init="xavier")
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 5
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.modules())


def test_kaiming_init_draws_linear_weights_from_normal_001() -> None:
    torch.manual_seed(0)
    model = build_alexnet(num_classes=10, init="kaiming")
    std = model.classifier[1].weight.std().item()
    assert 0.009 < std < 0.011


def test_pretrained_loads_from_local_file_and_adapts_channels_and_classes(tmp_path) -> None:
    reference = torchvision.models.alexnet(num_classes=1000)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(reference.state_dict(), path)

    same = build_alexnet(num_classes=1000, pretrained=True, pretrained_path=str(path))
    for key, value in reference.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key

    adapted = build_alexnet(num_classes=5, in_channels=1, pretrained=True, pretrained_path=str(path))
    conv1 = reference.features[0].weight
    assert torch.allclose(adapted.features[0].weight, conv1.sum(dim=1, keepdim=True))
    assert torch.equal(adapted.classifier[4].weight, reference.classifier[4].weight)
    assert adapted.classifier[6].weight.shape == (5, 4096)


def test_pretrained_missing_file_gives_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match=r"pretrained AlexNet weights not found.*model\.pretrained_path") as err:
        build_alexnet(num_classes=2, pretrained=True, pretrained_path=str(tmp_path / "nope.pth"))
    assert "\n" not in str(err.value)


def test_unknown_option_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"model\.head=.wide. is unknown"):
        AlexNet(head="wide")
