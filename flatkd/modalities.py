"""The three compressed-domain modalities flatkd trains one network each on.

- ``iframe``: the decoded I-frame of a GOP, RGB (3 channels);
- ``mv``: the motion-vector field, (dx, dy) = destination - source in pixels (2 channels);
- ``residual``: the decoded frame minus the motion-compensated reference, RGB (3 channels).
"""

from __future__ import annotations

from typing import Literal

Modality = Literal["iframe", "mv", "residual"]

#: every modality, in flatkd's canonical order
MODALITIES: tuple[Modality, ...] = ("iframe", "mv", "residual")

#: input channels of each modality's network
CHANNELS: dict[str, int] = {"iframe": 3, "mv": 2, "residual": 3}
