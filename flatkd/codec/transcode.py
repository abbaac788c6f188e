"""Re-encoding any video FFmpeg reads into a stream flatkd reads exactly.

:func:`transcode` decodes every frame of the source (B-frames, any codec and container; frames in
display order) and encodes them with :func:`flatkd.codec.encode.encode_video_frames`: by default the
canonical MPEG-4 Part 2, GOP 12, P-frames only, fixed quantiser, 340x256 (CoViAR's
``reencode.sh`` does the same with ``ffmpeg -vf scale=340:256 -q:v 1 -c:v mpeg4``); or H.264 with
one reference frame. Frames are scaled with bicubic interpolation; a source of another aspect
ratio is centre-cropped to the output's by default (``EncodeSettings.fit``: or padded, or
stretched as CoViAR's script does). :func:`transcode_all` does many files in a process pool, skipping outputs made
before from the same source with the same settings (recorded in ``OUT/transcode.json``; outputs
are written atomically, so an existing one is complete) and reporting, not raising, the sources
that fail.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error

from flatkd.codec.encode import CANONICAL, EncodeSettings, encode_video_frames
from flatkd.codec.probe import open_input
from flatkd.errors import ConfigError, FlatkdError, InputFileError
from flatkd.fileio import read_json, write_json
from flatkd.naming import is_video, video_key
from flatkd.progress import ProgressFactory, no_progress
from flatkd.workers import run_jobs

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


def declared_frames(container: av.container.InputContainer) -> int:
    """The frame count the container declares for its first video stream (0: it does not say)."""
    return max(0, int(container.streams.video[0].frames or 0))


def transcode(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: EncodeSettings = CANONICAL,
    max_frames: int | None = None,
) -> int:
    """Re-encode ``source`` (its first ``max_frames`` frames, or all) as ``output`` with ``settings``
    (the frame rate follows the source's, rounded, when it has one). Returns the number of frames
    written; ``output`` appears only when complete."""
    return _transcode(Path(source), Path(output), settings, max_frames)[0]


def _transcode(
    source: Path, output: Path, settings: EncodeSettings, max_frames: int | None
) -> tuple[int, int]:
    """:func:`transcode`; returns (frames written, frames the container declares)."""
    with open_input(source) as container:
        rate = container.streams.video[0].guessed_rate
        declared = declared_frames(container)
        if rate:
            settings = dataclasses.replace(settings, fps=max(1, round(float(rate))))
        try:
            written = encode_video_frames(_decoded_frames(source, container, max_frames), output, settings)
        except av.error.FFmpegError as exc:
            raise InputFileError(
                f"{source}: FFmpeg could not encode it to {output} ({exc.strerror or exc}); check --size and --format"
            ) from None
        return written, declared


@dataclass(frozen=True)
class TranscodeResult:
    """What happened to one source: ``status`` is ``done``, ``skipped`` (the output exists and was
    made from the same source with the same settings) or ``failed`` (``error`` says why);
    ``warning``: something the user should know about a ``done`` one (fewer frames decoded than
    the container declares)."""

    source: Path
    output: Path
    status: str
    frames: int = 0
    error: str = ""
    warning: str = ""


#: what ``OUT/transcode.json`` records of each output, to tell a finished one from a stale one
RECORD_FILE = "transcode.json"


def _signature(source: Path, settings: EncodeSettings, container: str, max_frames: int | None) -> dict[str, Any]:
    """The source (resolved path, size, mtime) and settings an output is made from."""
    try:
        stat = source.stat()
        origin: dict[str, Any] = {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    except OSError:
        origin = {"path": str(source.absolute())}
    return {
        "source": origin,
        "settings": {**dataclasses.asdict(settings), "container": container, "max_frames": max_frames},
    }


def _read_records(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        records = read_json(path)
    except InputFileError:
        return {}  # unreadable: nothing counts as done, every output is made again
    return records if isinstance(records, dict) else {}


def _transcode_one(
    index: int, source: Path, output: Path, settings: EncodeSettings, max_frames: int | None
) -> tuple[int, TranscodeResult]:
    if source.is_dir():
        error = f"{source}: a folder without video files below it (.avi, .mp4, .mpg, .mov, ...)"
        return index, TranscodeResult(source, output, "failed", error=error)
    try:
        frames, declared = _transcode(source, output, settings, max_frames)
    except (FlatkdError, av.error.FFmpegError) as exc:
        return index, TranscodeResult(source, output, "failed", error=str(exc))
    except OSError as exc:
        where = exc.filename or source
        return index, TranscodeResult(source, output, "failed", error=f"{where}: {exc.strerror or exc}")
    warning = ""
    if max_frames is None and declared and frames < declared:
        warning = (
            f"{source}: only {frames} of the {declared} frames the container declares could be decoded"
            " (truncated or damaged?); the output has those"
        )
    return index, TranscodeResult(source, output, "done", frames=frames, warning=warning)


def _folder_videos(folder: Path, out_dir: Path) -> list[Path]:
    """The videos below ``folder`` (:func:`flatkd.naming.is_video`; hidden files and folders
    skipped), sorted; :class:`ConfigError` if ``out_dir`` lies in ``folder``."""
    target, root = out_dir.resolve(), folder.resolve()
    if target == root or root in target.parents:
        raise ConfigError(
            f"--out {out_dir} lies in the source folder {folder}: outputs would mix with the sources; choose another --out"
        )
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and is_video(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip


def _pairs(sources: Sequence[str | os.PathLike[str]], out_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(source, output) of every video to make: a file ``S`` -> ``out_dir/<key of S><suffix>``;
    a folder -> each video below it at the same place below ``out_dir`` (class folders kept); a
    folder without videos stays, as a file would, to be reported as failed."""
    pairs = []
    for source in map(Path, sources):
        videos = _folder_videos(source, out_dir) if source.is_dir() else []
        if not videos:
            pairs.append((source, out_dir / (video_key(source.name) + suffix)))
        for video in videos:
            relative = video.relative_to(source)
            pairs.append((video, out_dir / relative.parent / (video_key(relative.name) + suffix)))
    return pairs


def _record_key(output: Path, out_dir: Path) -> str:
    """An output's entry in ``out_dir/transcode.json``: its path below ``out_dir``."""
    return output.relative_to(out_dir).as_posix()


def transcode_all(
    sources: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: EncodeSettings = CANONICAL,
    container: str = "mp4",
    jobs: int = 1,
    max_frames: int | None = None,
    progress: ProgressFactory = no_progress,
) -> list[TranscodeResult]:
    """Transcode each source (see :func:`transcode`) to ``out_dir/<key><suffix>`` (the name
    without its container suffix, :func:`flatkd.naming.video_key`) with ``jobs``
    worker processes. A source folder stands for every video below it (recursively, hidden ones
    skipped), each written to the same relative place below ``out_dir``: class folders are kept.

    Returns one :class:`TranscodeResult` per video, in the order given (a folder's sorted by
    path). An output is skipped only
    when ``out_dir/transcode.json`` records that it was made from the same source (path, size,
    modification time) with the same settings; otherwise it is made again. Two sources with the
    same output, or ``out_dir`` being the folder of a source or lying in a source folder raise
    :class:`ConfigError` before anything is written; a source folder without videos is a failed
    source.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
    out_dir = Path(out_dir)
    pairs = _pairs(sources, out_dir, output_suffix(container, settings.codec))
    seen: dict[Path, Path] = {}
    target = out_dir.resolve()
    for source, output in pairs:
        if source.absolute().parent.resolve() == target:
            raise ConfigError(
                f"--out {out_dir} is the folder of the source {source}: outputs would replace or mix with"
                " the sources; choose another --out"
            )
        if output in seen:
            raise ConfigError(
                f"{seen[output]} and {source} would both be written to {output}; transcode them separately"
            )
        seen[output] = source
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _read_records(out_dir)
    signatures = [_signature(s, settings, container, max_frames) for s, _ in pairs]
    results: dict[int, TranscodeResult] = {}
    todo = []
    for i, (source, output) in enumerate(pairs):
        if output.is_file() and records.get(_record_key(output, out_dir)) == signatures[i]:
            results[i] = TranscodeResult(source, output, "skipped")
        else:
            todo.append((i, source, output, settings, max_frames))
    with progress(total=len(pairs), desc="transcode") as bar:
        bar.update(len(results))
        for i, result in run_jobs(_transcode_one, todo, max(1, min(jobs, len(todo)))):
            results[i] = result
            if result.status == "done":
                records[_record_key(result.output, out_dir)] = signatures[i]
                write_json(out_dir / RECORD_FILE, dict(sorted(records.items())))
            bar.update(1)
    return [results[i] for i in range(len(pairs))]
