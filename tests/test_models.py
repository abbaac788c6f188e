"""Backbones, presets, internal classifiers, freezing, MACs and weight loading."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

from flatkd.errors import ConfigError, InputFileError
from flatkd.fileio import save_tensors
from flatkd.modalities import CHANNELS, MODALITIES
from flatkd.models import (
    build_model,
    exit_macs,
    list_presets,
    load_backbone_weights,
    resolve_preset,
)


def _clips(modality: str, batch: int = 2, segments: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, segments, CHANNELS[modality], size, size, generator=g)


@pytest.mark.parametrize(("preset", "modality"), list(itertools.product(list_presets(), MODALITIES)))
def test_every_preset_gives_four_exits_of_class_logits(preset: str, modality: str) -> None:
    torch.manual_seed(0)
    net = build_model(preset, modality, num_classes=7).eval()
    with torch.no_grad():
        outs = net(_clips(modality, size=64))
    assert net.num_exits == 4 and net.exit_names == ("layer1", "layer2", "layer3", "fc")
    assert [tuple(o.shape) for o in outs] == [(2, 7)] * 4
    assert all(torch.isfinite(o).all() for o in outs)
    assert (net.data_bn is None) == (modality == "iframe")
    assert net.backbone.conv1.in_channels == CHANNELS[modality]


def test_paper_preset_resolves_per_modality() -> None:
    assert resolve_preset("paper", "iframe") == resolve_preset("resnet50", "iframe")
    assert resolve_preset("paper", "mv") == resolve_preset("resnet18", "mv")
    assert resolve_preset("paper", "residual") == resolve_preset("resnet18", "residual")
    with pytest.raises(ConfigError, match="unknown model preset 'resnet19'.*cpu-tiny"):
        resolve_preset("resnet19", "mv")
    with pytest.raises(ConfigError, match="unknown exit stage 'layer4'"):
        build_model("cpu-tiny", "mv", 5, exits=("layer1", "layer4"))


def _torchvision_resnet_keys(blocks: tuple[int, ...], bottleneck: bool) -> set[str]:
    """State-dict names of torchvision's ResNet, written out from its documented structure."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", "fc.weight", "fc.bias"} | {f"bn1.{b}" for b in bn}
    convs = (1, 2, 3) if bottleneck else (1, 2)
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for c in convs:
                keys |= {f"{prefix}.conv{c}.weight"} | {f"{prefix}.bn{c}.{b}" for b in bn}
            if block == 0 and (bottleneck or stage > 1):
                keys |= {f"{prefix}.downsample.0.weight"} | {f"{prefix}.downsample.1.{b}" for b in bn}
    return keys


@pytest.mark.parametrize(
    ("preset", "blocks", "bottleneck", "params"),
    [("resnet18", (2, 2, 2, 2), False, 11_689_512), ("resnet50", (3, 4, 6, 3), True, 25_557_032)],
)
def test_backbones_match_torchvision_names_and_sizes(
    preset: str, blocks: tuple[int, ...], bottleneck: bool, params: int
) -> None:
    backbone = build_model(preset, "iframe", num_classes=1000).backbone
    assert set(backbone.state_dict()) == _torchvision_resnet_keys(blocks, bottleneck)
    # parameter counts published for torchvision.models.resnet18 / resnet50 (ImageNet, 1000 classes)
    assert sum(p.numel() for p in backbone.parameters()) == params


def test_segment_consensus_averages_per_segment_logits() -> None:
    torch.manual_seed(0)
    net = build_model("cpu-tiny", "residual", num_classes=5).eval()
    clips = _clips("residual", batch=2, segments=3, size=48)
    with torch.no_grad():
        together = net(clips)
        alone = [net(clips[:, s : s + 1]) for s in range(3)]
    for exit_index, logits in enumerate(together):
        mean = torch.stack([a[exit_index] for a in alone]).mean(dim=0)
        torch.testing.assert_close(logits, mean, rtol=1e-5, atol=1e-6)


def test_forward_exit_computes_the_same_logits_as_the_full_pass() -> None:
    torch.manual_seed(0)
    net = build_model("cpu-tiny", "mv", num_classes=5).eval()
    clips = _clips("mv", size=48)
    with torch.no_grad():
        full = net(clips)
        for index in range(net.num_exits):
            assert torch.equal(net.forward_exit(clips, index), full[index])


def test_frozen_backbone_batchnorm_stays_in_eval_mode() -> None:
    net = build_model("cpu-tiny", "mv", num_classes=5)
    net.set_trainable("ics")
    net.train()
    backbone_bns = [m for m in [net.data_bn, *net.backbone.modules()] if isinstance(m, nn.BatchNorm2d)]
    assert backbone_bns and not any(m.training for m in backbone_bns)
    assert all(m.training for m in net.ics.modules())
    assert not any(p.requires_grad for p in [*net.backbone.parameters(), *net.data_bn.parameters()])
    assert all(p.requires_grad for p in net.ics.parameters())
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("ics.")}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = sum(out.logsumexp(dim=1).mean() for out in net(_clips("mv", size=48))[:-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    net.set_trainable("all")
    net.train()
    assert all(m.training for m in backbone_bns)


def _hooked_macs(net: nn.Module, clips: torch.Tensor, index: int) -> int:
    """MACs of conv and linear layers counted from their output shapes with forward hooks."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw
        else:
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        net.forward_exit(clips, index)
    for handle in handles:
        handle.remove()
    return total


def test_exit_macs_are_cumulative_per_clip_and_match_a_hook_count() -> None:
    net = build_model("cpu-tiny", "mv", num_classes=10).eval()
    macs = exit_macs(net, (3, 2, 64, 64))
    clip = torch.zeros(1, 3, 2, 64, 64)
    assert macs == [_hooked_macs(net, clip, i) for i in range(4)]
    assert macs == sorted(macs)
    assert exit_macs(net, (1, 2, 64, 64)) == [m // 3 for m in macs]
    resnet18 = build_model("resnet18", "iframe", num_classes=1000)
    # torchvision's model card: ResNet-18 at 224 px costs 1.81 GFLOPS (multiply-adds)
    assert exit_macs(resnet18, (1, 3, 224, 224))[-1] == pytest.approx(1.814e9, rel=1e-3)


def test_rgb_weights_load_into_the_motion_vector_stem(tmp_path: Path) -> None:
    torch.manual_seed(1)
    imagenet = build_model("resnet18", "iframe", num_classes=1000).backbone.state_dict()
    save_tensors(tmp_path / "resnet18.safetensors", imagenet)
    net = build_model("paper", "mv", num_classes=10)
    fc_before = net.backbone.fc.weight.clone()
    notes = load_backbone_weights(net, tmp_path / "resnet18.safetensors")
    assert len(notes) == 3  # conv1 adapted, fc.weight and fc.bias skipped
    stem = imagenet["conv1.weight"].mean(dim=1, keepdim=True)
    assert torch.equal(net.backbone.conv1.weight, stem.expand(-1, 2, -1, -1))
    assert torch.equal(net.backbone.layer3[1].bn2.running_var, imagenet["layer3.1.bn2.running_var"])
    assert torch.equal(net.backbone.fc.weight, fc_before)


def test_coviar_style_checkpoint_loads_with_prefixes_stripped(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = build_model("cpu-tiny", "residual", num_classes=4)
    wrapped = {f"module.base_model.{k}": v for k, v in source.backbone.state_dict().items()}
    wrapped |= {f"module.data_bn.{k}": v + 1.0 for k, v in source.data_bn.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": wrapped}, tmp_path / "coviar.pth.tar")
    net = build_model("cpu-tiny", "residual", num_classes=4)
    assert load_backbone_weights(net, tmp_path / "coviar.pth.tar") == []
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            net.backbone.state_dict().values(), source.backbone.state_dict().values(), strict=True
        )
    )
    assert torch.equal(net.data_bn.running_mean, source.data_bn.running_mean + 1.0)


def test_mismatched_or_unsafe_weight_files_are_refused(tmp_path: Path) -> None:
    save_tensors(tmp_path / "r50.safetensors", build_model("resnet50", "iframe", 10).backbone.state_dict())
    with pytest.raises(InputFileError, match=r"r50\.safetensors: does not fit the resnet18 iframe backbone \(wrong shape: ") as refused:
        load_backbone_weights(build_model("resnet18", "iframe", 10), tmp_path / "r50.safetensors", "resnet18")
    assert str(refused.value).endswith("these weights fit --preset resnet50 or --preset paper")
    save_tensors(tmp_path / "r18.safetensors", build_model("resnet18", "iframe", 1000).backbone.state_dict())
    with pytest.raises(InputFileError, match="these weights fit --preset resnet18 or --preset paper$") as refused:
        load_backbone_weights(build_model("cpu-tiny", "mv", 10), tmp_path / "r18.safetensors", "cpu-tiny")
    message = str(refused.value)
    assert "wrong shape: " in message and "missing" not in message
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(InputFileError, match="not a plain state dict readable with weights_only=True"):
        load_backbone_weights(build_model("cpu-tiny", "iframe", 10), tmp_path / "module.pt")
