"""The data package's choices that the CLI offers in its options: light constants, defined here
once so that ``flatkd train --help`` imports no torch (:mod:`flatkd.data.transforms` and
:mod:`flatkd.runs.data_source` import them from here)."""

from __future__ import annotations

from typing import Literal

#: the numbers of test crops per clip CoViAR's ``test.py`` supports
EVAL_CROPS = (1, 10)

#: where a command reads its frames: the modality cache, or (I-frames only) the videos
FrameSource = Literal["cache", "videos"]
FRAME_SOURCES: tuple[FrameSource, ...] = ("cache", "videos")
