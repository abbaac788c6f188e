"""What distillation needs from the networks: the feature accessor and final transform of
MultiExitNet, the backbone/head split of every exit's MACs, and how WISE charges a cascade."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flatkd.distill.genkd import AttentionHead, AttentionReweight
from flatkd.distill.wise import step_costs
from flatkd.errors import InputFileError
from flatkd.fileio import write_json
from flatkd.models import build_model, exit_costs, exit_macs
from flatkd.models.exits import POOL_GRID
from flatkd.runs.rundir import RunDir


def _clips(channels: int, batch: int = 2, segments: int = 3, size: int = 48) -> torch.Tensor:
    return torch.randn(batch, segments, channels, size, size)


def test_features_and_classify_split_the_final_exit() -> None:
    torch.manual_seed(0)
    net = build_model("cpu-tiny", "mv", num_classes=5).eval()
    clips = _clips(2)
    with torch.no_grad():
        features = net.features(clips)
        assert features.shape == (2, 128, 3, 2, 2)  # [B, C, T = segments, H/32, W/32]
        assert torch.equal(net.classify(features), net(clips)[-1])


def test_final_transform_runs_before_the_final_head_only_and_freezes_with_the_backbone() -> None:
    torch.manual_seed(0)
    net = build_model("cpu-tiny", "residual", num_classes=5).eval()
    clips = _clips(3)
    with torch.no_grad():
        plain = net(clips)
        transform = AttentionReweight(AttentionHead(128))
        net.attach_final_transform(transform)
        reweighted = net(clips)
        expected = net.classify(transform(net.features(clips)))
    assert all(torch.equal(a, b) for a, b in zip(plain[:-1], reweighted[:-1]))
    assert torch.equal(reweighted[-1], expected) and not torch.equal(reweighted[-1], plain[-1])
    assert torch.equal(net.forward_exit(clips, -1), expected)
    assert any(k.startswith("final_transform.head.") for k in net.state_dict())
    net.set_trainable("ics")
    assert not any(p.requires_grad for p in transform.parameters())
    net.set_trainable("backbone")
    assert all(p.requires_grad for p in transform.parameters())
    assert not any(p.requires_grad for p in net.ics.parameters())


def test_exit_costs_split_each_path_into_backbone_and_a_head_counted_by_hand() -> None:
    net = build_model("cpu-tiny", "iframe", num_classes=10)
    shape = (3, 3, 64, 64)
    backbone, head = exit_costs(net, shape)
    assert [b + h for b, h in zip(backbone, head)] == exit_macs(net, shape)
    assert backbone == sorted(backbone) and backbone[2] == backbone[3] - _stage4_macs()
    # each IC: conv3x3 (stage channels -> width) over the stage's map, then linear(16*width -> 10);
    # the final head: linear(128 -> 10); per segment, 3 segments
    for index, (channels, side) in enumerate([(16, 16), (32, 8), (64, 4)]):
        conv = channels * channels * 9 * side * side
        assert head[index] == 3 * (conv + POOL_GRID * POOL_GRID * channels * 10)
    assert head[3] == 3 * 128 * 10


def _stage4_macs() -> int:
    """layer4 of cpu-tiny on a 4x4 map of 64 channels, 3 segments: a strided 3x3 conv 64->128
    and a 3x3 conv 128->128 on 2x2, plus the 1x1 strided projection 64->128."""
    return 3 * 4 * (64 * 128 * 9 + 128 * 128 * 9 + 64 * 128)


def test_cascade_cost_is_backbone_to_the_deepest_exit_plus_every_visited_head(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    net = build_model("cpu-tiny", "mv", num_classes=4)
    backbone, head = exit_costs(net, (2, 2, 32, 32))
    run.update_macs("mv", backbone, head)
    path, heads = run.read_macs(), run.read_head_macs()
    costs = step_costs(["mv:0", "mv:2", "mv:1"], path, heads)
    assert costs.tolist() == [
        backbone[0] + head[0],
        backbone[2] + head[0] + head[2],
        backbone[2] + head[0] + head[1] + head[2],
    ]
    write_json(run.macs_path, {"mv": [1, 2, 3]})  # the format before head MACs were recorded
    with pytest.raises(InputFileError, match=f"flatkd evaluate --run {tmp_path}"):
        run.read_macs()
