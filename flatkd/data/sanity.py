"""A fast check of what each modality tells about the classes: a linear probe on pooled features.

For every clip (centred TSN segments, :class:`~flatkd.data.clip_dataset.ClipDataset` in evaluation
mode) and every modality, the features are histograms over all pixels of each channel's
normalised values, of the differences of neighbouring channels (``R - G``, ``G - B``;
``dx - dy``) and of each channel's horizontal and vertical differences (``x[.., j+1] - x[.., j]``),
averaged over the segments: a bag of local statistics that sees colour, motion direction and
magnitude, rotation/zoom (differences of motion across space), and residual energy and texture,
without any spatial layout. A multinomial logistic regression (L2-penalised, full-batch L-BFGS,
standardised features) is fitted on the training clips of each modality and scored on held-out
clips; the "fused" prediction adds the three models' log-probabilities (late fusion, as CoViAR
combines its three networks' scores). A linear classifier on fixed features measures what the
features make linearly available (Alain & Bengio, "Understanding intermediate layers using linear
classifier probes", 2016); L-BFGS: Liu & Nocedal, Math. Programming 45, 1989 (``torch.optim.LBFGS``).

On the synthetic set (:mod:`flatkd.data.synth.design`) the check is that each modality is
informative, that late fusion gains, and (``families`` design) that the modalities agree on most
clips, as CoViAR's networks do on UCF-101.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import open_dataset
from flatkd.data.splits import Sample
from flatkd.progress import ProgressFactory, no_progress
from flatkd.stats import pairwise_agreement

BINS = 16
#: Value range of the histograms per modality (normalised units); differences use +-half of it.
RANGES = {"iframe": (-2.2, 2.7), "mv": (-0.5, 0.5), "residual": (-1.5, 1.5)}


def _histograms(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Per channel of ``[S, C, H, W]``: a BINS-bin histogram of all its values (fractions),
    averaged over S; returns ``[C * BINS]``."""
    segments, channels = x.shape[:2]
    flat = x.reshape(segments * channels, -1)
    index = ((flat - low) / (high - low) * BINS).long().clamp_(0, BINS - 1)
    index += torch.arange(segments * channels).unsqueeze(1) * BINS
    counts = torch.bincount(index.reshape(-1), minlength=segments * channels * BINS).float()
    counts = counts.view(segments, channels, BINS) / flat.shape[1]
    return counts.mean(0).reshape(-1)


def clip_features(x: torch.Tensor, modality: str) -> torch.Tensor:
    """Pooled features of one clip's ``[S, C, H, W]`` input of ``modality`` (module docstring)."""
    low, high = RANGES[modality]
    half = (high - low) / 2
    return torch.cat(
        [
            _histograms(x, low, high),
            _histograms(x[:, 1:] - x[:, :-1], -half, half),
            _histograms(x[..., 1:] - x[..., :-1], -half, half),
            _histograms(x[..., 1:, :] - x[..., :-1, :], -half, half),
        ]
    )


def modality_features(
    dataset: ClipDataset, progress: ProgressFactory = no_progress
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Features ``{modality: [N, F]}`` and labels ``[N]`` of every clip of ``dataset``."""
    features: dict[str, list[torch.Tensor]] = {m: [] for m in dataset.modalities}
    labels = []
    with progress(total=len(dataset), desc="features") as bar:
        for i in range(len(dataset)):
            inputs, label = dataset[i]
            for modality, x in inputs.items():
                features[modality].append(clip_features(x, modality))
            labels.append(label)
            bar.update(1)
    return {m: torch.stack(f) for m, f in features.items()}, torch.tensor(labels)


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-2,
    steps: int = 200,
) -> torch.Tensor:
    """Test log-probabilities ``[N_test, num_classes]`` of an L2-penalised multinomial logistic
    regression fitted on the training features (standardised with the training mean and std) by
    full-batch L-BFGS."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_z, test_z = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(0)
    weight = (0.01 * torch.randn(train_z.shape[1], num_classes, generator=generator)).requires_grad_()
    bias = torch.zeros(num_classes, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = train_z @ weight + bias
        loss = torch.nn.functional.cross_entropy(logits, train_y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return torch.log_softmax(test_z @ weight + bias, dim=1)


@dataclass(frozen=True)
class ProbeResult:
    """Test predictions of the linear probe: per modality and ``"fused"``, with the labels."""

    predictions: dict[str, torch.Tensor]
    labels: torch.Tensor

    def accuracy(self) -> dict[str, float]:
        """Test accuracy of each modality alone and of the late fusion."""
        return {name: float((p == self.labels).float().mean()) for name, p in self.predictions.items()}

    def agreement(self) -> dict[tuple[str, str], float]:
        """Top-class agreement of every pair of single modalities (the fraction of test clips on
        which both predict the same class, right or wrong)."""
        return pairwise_agreement({m: p.numpy() for m, p in self.predictions.items() if m != "fused"})


def modality_probe(
    train: Sequence[Sample],
    test: Sequence[Sample],
    cache: str | os.PathLike[str],
    num_classes: int,
    *,
    input_size: int = 64,
    progress: ProgressFactory = no_progress,
) -> ProbeResult:
    """Linear-probe test predictions of each modality alone and of their late fusion (``"fused"``:
    the sum of the three models' log-probabilities)."""
    datasets = [ClipDataset(samples, cache, train=False, input_size=input_size) for samples in (train, test)]
    (train_f, train_y), (test_f, test_y) = (modality_features(d, progress) for d in datasets)
    scores = {m: linear_probe(train_f[m], train_y, test_f[m], num_classes) for m in train_f}
    scores["fused"] = torch.stack(list(scores.values())).sum(0)
    return ProbeResult(predictions={name: s.argmax(1) for name, s in scores.items()}, labels=test_y)


def probe_dataset(
    data_dir: str | os.PathLike[str],
    cache: str | os.PathLike[str],
    *,
    split: int = 1,
    input_size: int = 64,
    progress: ProgressFactory = no_progress,
) -> ProbeResult:
    """:func:`modality_probe` on split ``split`` of the dataset in ``data_dir`` (its whole
    training list against its test list) read from the modality cache ``cache``."""
    splits = open_dataset(data_dir, split=split, val_fraction=0.0)
    return modality_probe(
        splits.train, splits.test, cache, splits.num_classes, input_size=input_size, progress=progress
    )
