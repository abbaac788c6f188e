"""The compressed domain: I-frames, motion vectors and residuals of MPEG-4 Part 2 and H.264 videos.

* :mod:`~flatkd.codec.encode`: :class:`EncodeSettings`, :data:`CANONICAL`, :func:`encode_frames`
  (CoViAR's format: MPEG-4 Part 2, GOP 12, P-frames only, 340x256).
* :mod:`~flatkd.codec.probe`: :func:`probe` -> :class:`VideoInfo` (structure from packet headers).
* :mod:`~flatkd.codec.reader`: :class:`CompressedVideo` (``iter_gops``, ``read``) -> :class:`Gop`,
  :class:`Frames`; the arithmetic lives in :mod:`~flatkd.codec.blocks` (vectors -> per-pixel
  source maps) and :mod:`~flatkd.codec.compensation` (accumulation, motion, residual).
* :mod:`~flatkd.codec.transcode`: :func:`transcode`, :func:`transcode_all`.
"""

from flatkd.codec.encode import CANONICAL, EncodeSettings, encode_frames, encode_video_frames
from flatkd.codec.probe import VideoInfo, probe
from flatkd.codec.reader import CompressedVideo, Frames, Gop
from flatkd.codec.transcode import TranscodeResult, transcode, transcode_all

__all__ = [
    "CANONICAL",
    "CompressedVideo",
    "EncodeSettings",
    "Frames",
    "Gop",
    "TranscodeResult",
    "VideoInfo",
    "encode_frames",
    "encode_video_frames",
    "probe",
    "transcode",
    "transcode_all",
]
