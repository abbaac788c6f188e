"""Which dataset a run trains on (the run's ``data`` section) and the datasets built from it.

The first ``flatkd train`` of a run records the dataset folder, its modality cache, the split,
how the validation set was carved and the class names in ``config.yaml`` under ``data``; every
later command (other modalities, resume, evaluate, distillation) reads them from there, so
``--data`` is needed only once.

Where the frames come from is chosen per command, not recorded: the cache (the default), or, for
I-frames, the videos themselves (``flatkd train --source videos``, :mod:`flatkd.data.video_frames`),
stored at the run's cache's ``--size`` when that cache exists (so the samples are the cache's) and
at the default size otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from flatkd.config import from_dict, to_dict
from flatkd.data.cache import CacheSettings, default_cache_dir
from flatkd.data.cache.layout import SETTINGS_FILE
from flatkd.data.choices import FrameSource
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import DEFAULT_VAL_FRACTION, open_dataset
from flatkd.data.splits import Sample
from flatkd.data.video_frames import VideoIFrames, iframes_only
from flatkd.errors import ConfigError
from flatkd.fileio import read_json
from flatkd.runs.rundir import RunDir
from flatkd.runs.training import SplitData
from flatkd.train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class DataSource:
    """The ``data`` section of a run: dataset folder, cache folder, split (1-3), validation
    fraction and seed (see :func:`flatkd.data.open_dataset`), and the class names in label order."""

    dir: str
    cache: str
    split: int = 1
    val_fraction: float = DEFAULT_VAL_FRACTION
    val_seed: int = 0
    classes: tuple[str, ...] = ()


def resolve_data_source(
    run: RunDir,
    data_dir: str | os.PathLike[str] | None,
    cache: str | os.PathLike[str] | None = None,
    split: int | None = None,
    val_fraction: float | None = None,
) -> DataSource:
    """The run's recorded data source, or a new one from the arguments (and the dataset's class
    list) for a run that has none. Arguments that contradict the record are an error."""
    recorded = run.read_config().get("data")
    if recorded is not None:
        source = from_dict(DataSource, recorded, where=f"{run.config_path}: data")
        asked = {
            "dir": None if data_dir is None else str(Path(data_dir).resolve()),
            "cache": None if cache is None else str(Path(cache).resolve()),
            "split": split,
            "val_fraction": val_fraction,
        }
        for key, value in asked.items():
            if value is not None and value != getattr(source, key):
                raise ConfigError(
                    f"{run.path} was trained on {key} {getattr(source, key)}, not {value}; drop the option"
                    " or choose a new --run"
                )
        return source
    if data_dir is None:
        raise ConfigError(
            f"{run.path} records no dataset yet: pass --data DIR (a `flatkd data synth` output or a"
            " UCF-101/HMDB-51 tree)"
        )
    root = Path(data_dir).resolve()
    source = DataSource(
        dir=str(root),
        cache=str(Path(cache).resolve() if cache is not None else default_cache_dir(root)),
        split=1 if split is None else split,
        val_fraction=DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction,
    )
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    return dataclasses.replace(source, classes=splits.classes)


def record_data_source(run: RunDir, source: DataSource) -> None:
    """Write ``source`` as the run's ``data`` section."""
    run.set_section(["data"], to_dict(source))


def _frames(source: DataSource, frames: FrameSource, samples: Sequence[Sample]) -> str | VideoIFrames:
    """The cache folder, or the videos of ``samples`` at the storage size of the run's cache (if
    built; see the module docstring)."""
    if frames == "cache":
        return source.cache
    settings = Path(source.cache) / SETTINGS_FILE
    size = CacheSettings.from_record(read_json(settings)).size if settings.is_file() else CacheSettings.size
    return VideoIFrames(samples, size)


def open_split_data(
    source: DataSource, config: TrainConfig, modalities: Sequence[str], frames: FrameSource = "cache"
) -> SplitData:
    """Training (random TSN sampling, augmentation), validation and test (centred) datasets
    serving ``modalities`` of the same clips, at ``config``'s segments and input size, read from
    ``frames`` (``"videos"``: I-frames only, a one-line error for other modalities)."""
    if frames == "videos":
        iframes_only(modalities)
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    if splits.classes != source.classes:
        raise ConfigError(
            f"the class list of {source.dir} changed since the run recorded it; use a new --run"
        )
    common = {
        "modalities": tuple(modalities),
        "num_segments": config.num_segments,
        "input_size": config.input_size,
        "seed": config.seed,
    }
    return SplitData(
        train=ClipDataset(splits.train, _frames(source, frames, splits.train), train=True, **common),
        val=ClipDataset(splits.val, _frames(source, frames, splits.val), train=False, **common),
        test=ClipDataset(splits.test, _frames(source, frames, splits.test), train=False, **common),
    )
