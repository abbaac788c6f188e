"""Format-1 modality caches (plain ``.npy`` arrays, flatkd's cache before format 2) written the
way flatkd wrote them: each video decoded whole by random access, converted in one piece. An
independent path to the arrays a format-2 cache must return, and a format-1 cache to read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flatkd.codec.reader import CompressedVideo
from flatkd.data.cache.storage import storage_size, store_iframe, store_mv, store_residual
from flatkd.data.splits import Sample


def write_format1(samples: Sequence[Sample], out: Path, size: int | None, accumulate: bool = True) -> None:
    """A finished format-1 cache of ``samples`` at ``out`` (all three modalities, lossless)."""
    out.mkdir(parents=True)
    (out / "cache.json").write_text(json.dumps({"format": 1, "size": size, "accumulate": accumulate}))
    records = {}
    for sample in samples:
        video = CompressedVideo(sample.path)
        info = video.info
        frames = video.read(np.arange(len(video)), accumulate=accumulate)
        types = np.frombuffer(info.picture_types.encode(), dtype=np.uint8)
        gops, p_frames = np.flatnonzero(types == ord("I")), np.flatnonzero(types == ord("P"))
        out_hw = storage_size(info.height, info.width, size)
        arrays = {
            "iframe": store_iframe(frames.rgb[gops], out_hw),
            "mv": store_mv(frames.mv[p_frames], out_hw),
            "residual": store_residual(frames.residual[p_frames], out_hw),
        }
        folder = out / "videos" / sample.video
        folder.mkdir(parents=True)
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array, allow_pickle=False)
        records[sample.video] = {
            "status": "ok",
            "types": info.picture_types,
            "height": out_hw[0],
            "width": out_hw[1],
            "bytes": sum((folder / f"{m}.npy").stat().st_size for m in arrays),
        }
        (folder / "meta.json").write_text(json.dumps(records[sample.video]))
    settings = {"size": size, "accumulate": accumulate}
    (out / "manifest.json").write_text(json.dumps({"format": 1, "settings": settings, "videos": records}))
