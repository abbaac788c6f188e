"""The torch ``Dataset`` of compressed-video clips: any subset of I-frame, motion, residual.

``dataset[i]`` returns ``(inputs, label)`` with ``inputs[m]`` a float32 tensor ``[S, C, H, W]`` for
each requested modality ``m`` (C = 3 for ``iframe``, 2 for ``mv``, 3 for ``residual``; S
segments; H = W = ``input_size``). All modalities of one sample come from the same GOP positions,
crop and flip, so a teacher on one modality and a student on another see the same moments of the
same clip. Sampling: :mod:`flatkd.data.sampling`; crops, flips, normalisation:
:mod:`flatkd.data.transforms`; storage: :mod:`flatkd.data.cache.layout`.

Determinism: in training, sample ``i`` of epoch ``e`` draws its segment positions, crop and flip
from ``numpy.random.default_rng((seed, e, i))``, so the result depends on neither the worker that
loads it nor the order of loading, and the draws do not depend on which modalities are requested.
Call :meth:`ClipDataset.set_epoch` before iterating each epoch (a ``DataLoader`` copies the dataset
into its workers when an iterator starts; with ``persistent_workers=True`` they keep the epoch
they started with). Evaluation (``train=False``) uses centred positions and crops and no RNG.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from flatkd.data.cache.layout import ModalityCache, VideoEntry
from flatkd.data.sampling import segment_positions
from flatkd.data.splits import Sample
from flatkd.data.transforms import (
    DEFAULT_SCALES,
    CropBox,
    centre_crop,
    check_crop_scales,
    multiscale_crop,
    normalisation,
    resize,
)
from flatkd.data.video_frames import VideoIFrames
from flatkd.errors import ConfigError, MissingPrerequisiteError
from flatkd.modalities import CHANNELS, MODALITIES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipPlan:
    """What sample ``i`` reads: P-frame rows (of ``mv.npy``/``residual.npy``) and GOP rows (of
    ``iframe.npy``) per segment, the crop and whether it is flipped."""

    p_rows: np.ndarray
    gop_rows: np.ndarray
    box: CropBox
    flip: bool


class ClipDataset(Dataset[tuple[dict[str, torch.Tensor], int]]):
    """Clips of ``samples`` served from the modality cache at ``cache``.

    Args:
        samples: e.g. ``open_dataset(...).train``.
        cache: a :class:`ModalityCache` or its folder (``flatkd data cache`` output), or a
            :class:`~flatkd.data.video_frames.VideoIFrames` (I-frames decoded from the videos).
        modalities: any non-empty subset of ``("iframe", "mv", "residual")``, in the order wanted.
        train: random TSN positions, multi-scale crops and flips (else centred, no flip).
        num_segments: TSN segments S.
        input_size: side of the square network input.
        scales, max_distort: multi-scale crop settings (training only).
        flip: random horizontal flips in training.
        seed: base seed of the per-sample generators.

    Videos the cache lists as failed (corrupt files) are left out with a warning; videos the
    cache has never seen raise :class:`MissingPrerequisiteError` naming the command to run.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        cache: ModalityCache | VideoIFrames | str | os.PathLike[str],
        modalities: Sequence[str] = MODALITIES,
        *,
        train: bool,
        num_segments: int = 3,
        input_size: int = 112,
        scales: Sequence[float] = DEFAULT_SCALES,
        max_distort: int = 1,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.cache = cache if isinstance(cache, ModalityCache | VideoIFrames) else ModalityCache(cache)
        self.modalities = tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or unknown or len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(
                f"modalities must be distinct names out of {', '.join(MODALITIES)}, got {list(modalities)}"
            )
        if num_segments < 1 or input_size < 8:
            raise ConfigError(f"need num_segments >= 1 and input_size >= 8, got {num_segments}, {input_size}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.train = train
        self.num_segments = num_segments
        self.input_size = input_size
        self.scales = check_crop_scales(scales, max_distort)
        self.max_distort = max_distort
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.samples, self._entries = self._usable(samples)
        bounds = np.cumsum([0, *(CHANNELS[m] for m in self.modalities)])
        self._channels = {
            m: slice(int(lo), int(hi))
            for m, lo, hi in zip(self.modalities, bounds[:-1], bounds[1:], strict=True)
        }
        coefficients = np.concatenate([normalisation(m) for m in self.modalities], axis=1)
        self._coefficients = torch.from_numpy(coefficients)

    def _usable(self, samples: Sequence[Sample]) -> tuple[tuple[Sample, ...], list[VideoEntry]]:
        missing = [s.video for s in samples if s.video not in self.cache]
        if missing:
            raise MissingPrerequisiteError(
                f"{len(missing)} of {len(samples)} videos (e.g. {missing[0]}) are not in the cache "
                f"{self.cache.root}: run `flatkd data cache DATASET_DIR --out {self.cache.root}`"
            )
        kept = [s for s in samples if self.cache.entry(s.video).ok]
        if len(kept) < len(samples):
            failed = next(s.video for s in samples if not self.cache.entry(s.video).ok)
            log.warning(
                "leaving out %d videos the cache could not decode (e.g. %s: %s)",
                len(samples) - len(kept),
                failed,
                self.cache.entry(failed).error,
            )
        return tuple(kept), [self.cache.entry(s.video) for s in kept]

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of training epoch ``epoch`` (see the module docstring)."""
        self.epoch = int(epoch)

    @property
    def labels(self) -> list[int]:
        """The label of every sample, in order."""
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def _normalisation(self, box: CropBox, flip: bool) -> torch.Tensor:
        """``[4, C]`` coefficients over the concatenated channels (see :func:`normalisation`); the
        motion scale of the crop's resize and the flip enter the motion channels."""
        coefficients = self._coefficients
        if "mv" in self._channels:
            coefficients = coefficients.clone()
            dx, dy = self._channels["mv"].start, self._channels["mv"].start + 1
            coefficients[0, dx] *= (-1.0 if flip else 1.0) * self.input_size / box.width
            coefficients[0, dy] *= self.input_size / box.height
        return coefficients

    def plan(self, index: int) -> ClipPlan:
        """The segment positions, crop and flip of sample ``index`` in the current epoch."""
        entry = self._entries[index]
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        p_rows = segment_positions(len(entry.p_frames), self.num_segments, rng)
        height, width = entry.size
        if rng is None:
            box, flip = centre_crop(height, width), False
        else:
            box = multiscale_crop(rng, height, width, self.scales, self.max_distort)
            flip = self.flip and bool(rng.random() < 0.5)
        return ClipPlan(p_rows=p_rows, gop_rows=entry.gop_of_p[p_rows], box=box, flip=flip)

    def transform(self, windows: dict[str, np.ndarray], plan: ClipPlan) -> dict[str, torch.Tensor]:
        """Network inputs from the stored values inside ``plan.box`` (``windows[m]``: ``[S, h, w, C]``
        of the stored dtype): flip, normalise, resize (see :mod:`flatkd.data.transforms`)."""
        box = plan.box
        # all modalities side by side, normalised, indexed [S, h, w, C_total]; stored channels-last
        # (torch's bilinear resize is fastest so) except for motion alone (2 channels: planar is)
        total = self._channels[self.modalities[-1]].stop
        if total >= 3:
            clip = torch.empty((self.num_segments, box.height, box.width, total))
        else:
            clip = torch.empty((self.num_segments, total, box.height, box.width)).permute(0, 2, 3, 1)
        scale, shift, low, high = self._normalisation(box, plan.flip)
        for modality, channels in self._channels.items():
            window = torch.from_numpy(windows[modality])
            window = window.flip(2) if plan.flip else window
            out = torch.addcmul(shift[channels], window, scale[channels], out=clip[..., channels])
            if modality == "mv":
                out.clamp_(low[channels], high[channels])
        resized = resize(clip.permute(0, 3, 1, 2), self.input_size)
        return {m: resized[:, channels].contiguous() for m, channels in self._channels.items()}

    def read_windows(self, index: int, plan: ClipPlan) -> dict[str, np.ndarray]:
        """The stored values of sample ``index`` inside ``plan.box`` of the planned frames:
        ``{modality: [S, h, w, C]}`` (what :meth:`transform` takes)."""
        key, box = self.samples[index].video, plan.box
        windows = {}
        for modality in self.modalities:
            rows = plan.gop_rows if modality == "iframe" else plan.p_rows
            band = self.cache.read(key, modality, rows, box.top, box.height)
            windows[modality] = band[:, :, box.left : box.left + box.width]
        return windows

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        plan = self.plan(index)
        return self.transform(self.read_windows(index, plan), plan), self.samples[index].label
