"""TSN segment sampling over a video's P-frames.

Temporal Segment Networks (Wang et al., ECCV 2016) split a video into ``S`` equal segments and
take one frame from each: a uniformly random one in training, the middle one in evaluation. CoViAR
(Wu et al., CVPR 2018, ``dataset.py``) applies this to compressed video: the sampled frame gives a
GOP (whose I-frame the I-frame network sees) and a position in it (whose accumulated motion
vectors and residual the other networks see); a sampled I-frame position is moved to the last
P-frame of the previous GOP.

Here the segments split the list of P-frames directly, so every P-frame is equally likely in
training (CoViAR's remapping of I-frame positions makes the last P-frame of each GOP twice as
likely, and its rounding never picks the last frame), and the I-frame is the one of the sampled
P-frame's GOP, so all modalities of a sample share their GOP positions. With ``n`` P-frames,
segment ``s`` covers indices ``[round(s n / S), round((s + 1) n / S))`` (at least one index; for
``n < S`` segments share frames) and its evaluation index is ``floor((s + 1/2) n / S)``.
"""

from __future__ import annotations

import numpy as np

from flatkd.errors import ConfigError


def segment_positions(count: int, num_segments: int, rng: np.random.Generator | None) -> np.ndarray:
    """One index in ``range(count)`` per segment: random (training, ``rng`` given) or centred
    (evaluation, ``rng=None``). Returns int64 ``[num_segments]``, non-decreasing."""
    if count < 1:
        raise ValueError("a video needs at least one P-frame to sample from")
    if num_segments < 1:
        raise ConfigError(f"num_segments must be >= 1, got {num_segments}")
    s = np.arange(num_segments)
    if rng is None:
        return np.minimum(((2 * s + 1) * count) // (2 * num_segments), count - 1)
    begin = np.minimum(np.rint(s * count / num_segments).astype(np.int64), count - 1)
    end = np.maximum(np.rint((s + 1) * count / num_segments).astype(np.int64), begin + 1)
    return rng.integers(begin, end)
