"""Re-encoding any video FFmpeg reads into a stream flatkd reads exactly.

:func:`transcode` decodes every frame of the source (B-frames, any codec and container; frames in
display order) and encodes them with :func:`flatkd.codec.encode.encode_video_frames`: by default the
canonical MPEG-4 Part 2, GOP 12, P-frames only, fixed quantiser, 340x256 (CoViAR's
``reencode.sh`` does the same with ``ffmpeg -vf scale=340:256 -q:v 1 -c:v mpeg4``); or H.264 with
one reference frame. Frames are scaled with bicubic interpolation, without keeping the aspect ratio
(as CoViAR). :func:`transcode_all` does many files in a process pool, skipping outputs that exist
(outputs are written atomically, so an existing one is complete) and reporting, not raising, the
sources that fail.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from flatkd.codec.encode import CANONICAL, EncodeSettings, encode_video_frames
from flatkd.codec.probe import open_input
from flatkd.errors import ConfigError, FlatkdError, InputFileError
from flatkd.progress import ProgressFactory, no_progress

#: Output suffix per container choice; ``raw`` is the bare elementary stream.
_SUFFIXES = {"mp4": ".mp4", "avi": ".avi", "mkv": ".mkv", "raw": {"mpeg4": ".m4v", "h264": ".h264"}}
CONTAINER_CHOICES = tuple(_SUFFIXES)


def output_suffix(container: str, codec: str) -> str:
    """The file suffix of a transcoded file (``container`` one of :data:`CONTAINER_CHOICES`)."""
    if container not in _SUFFIXES:
        raise ConfigError(f"container {container!r} is not one of {', '.join(CONTAINER_CHOICES)}")
    suffix = _SUFFIXES[container]
    return suffix[codec] if isinstance(suffix, dict) else suffix


def _decoded_frames(
    path: Path, container: av.container.InputContainer, limit: int | None
) -> Iterator[av.VideoFrame]:
    stream = container.streams.video[0]
    stream.thread_count = 1
    count = 0
    try:
        for frame in container.decode(stream):
            if count == limit:
                break
            count += 1
            yield frame
    except av.error.FFmpegError as exc:
        raise InputFileError(f"{path}: corrupt stream after {count} frames ({exc.strerror or exc})") from None
    if count == 0:
        raise InputFileError(f"{path}: no frame could be decoded")


def transcode(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: EncodeSettings = CANONICAL,
    max_frames: int | None = None,
) -> int:
    """Re-encode ``source`` (its first ``max_frames`` frames, or all) as ``output`` with ``settings``
    (the frame rate follows the source's, rounded, when it has one). Returns the number of frames
    written; ``output`` appears only when complete."""
    source = Path(source)
    with open_input(source) as container:
        rate = container.streams.video[0].guessed_rate
        if rate:
            settings = dataclasses.replace(settings, fps=max(1, round(float(rate))))
        return encode_video_frames(_decoded_frames(source, container, max_frames), output, settings)


@dataclass(frozen=True)
class TranscodeResult:
    """What happened to one source: ``status`` is ``done``, ``skipped`` (output exists) or
    ``failed`` (``error`` says why)."""

    source: Path
    output: Path
    status: str
    frames: int = 0
    error: str = ""


def _transcode_one(
    source: Path, output: Path, settings: EncodeSettings, max_frames: int | None
) -> TranscodeResult:
    if output.exists():
        return TranscodeResult(source, output, "skipped")
    try:
        frames = transcode(source, output, settings, max_frames)
    except FlatkdError as exc:
        return TranscodeResult(source, output, "failed", error=str(exc))
    return TranscodeResult(source, output, "done", frames=frames)


def transcode_all(
    sources: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: EncodeSettings = CANONICAL,
    container: str = "mp4",
    jobs: int = 1,
    max_frames: int | None = None,
    progress: ProgressFactory = no_progress,
) -> list[TranscodeResult]:
    """Transcode each source (see :func:`transcode`) to ``out_dir/<stem><suffix>`` with ``jobs``
    worker processes.

    Returns one :class:`TranscodeResult` per source, in the order given. Two sources with the same
    stem raise :class:`ConfigError` before anything is written.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
    suffix = output_suffix(container, settings.codec)
    out_dir = Path(out_dir)
    pairs = [(Path(s), out_dir / (Path(s).stem + suffix)) for s in sources]
    seen: dict[Path, Path] = {}
    for source, output in pairs:
        if output in seen:
            raise ConfigError(
                f"{seen[output]} and {source} would both be written to {output}; transcode them separately"
            )
        seen[output] = source
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, TranscodeResult] = {}
    with progress(total=len(pairs), desc="transcode") as bar:
        workers = min(jobs, len(pairs))
        if workers <= 1:
            for i, (source, output) in enumerate(pairs):
                results[i] = _transcode_one(source, output, settings, max_frames)
                bar.update(1)
        else:
            # spawn, not fork: forking a process that runs threads (a test runner, a notebook) can
            # deadlock the child on a lock some other thread held
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_transcode_one, s, o, settings, max_frames): i
                    for i, (s, o) in enumerate(pairs)
                }
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(1)
    return [results[i] for i in range(len(pairs))]
