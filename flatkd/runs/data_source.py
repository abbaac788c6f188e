"""Which dataset a run trains on (the run's ``data`` section) and the datasets built from it.

The first ``flatkd train`` of a run records the dataset folder, its modality cache, the split,
how the validation set was carved and the class names in ``config.yaml`` under ``data``; every
later command (other modalities, resume, evaluate, distillation) reads them from there, so
``--data`` is needed only once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from flatkd.config import from_dict, to_dict
from flatkd.data.cache import default_cache_dir
from flatkd.data.clip_dataset import ClipDataset
from flatkd.data.dataset_splits import DEFAULT_VAL_FRACTION, open_dataset
from flatkd.errors import ConfigError
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


def open_split_data(source: DataSource, config: TrainConfig, modalities: Sequence[str]) -> SplitData:
    """Training (random TSN sampling, augmentation), validation and test (centred) datasets
    serving ``modalities`` of the same clips, at ``config``'s segments and input size."""
    splits = open_dataset(source.dir, source.split, val_fraction=source.val_fraction, seed=source.val_seed)
    if splits.classes != source.classes:
        raise ConfigError(
            f"the class list of {source.dir} changed since the run recorded it; use a new --run"
        )
    common = {
        "cache": source.cache,
        "modalities": tuple(modalities),
        "num_segments": config.num_segments,
        "input_size": config.input_size,
        "seed": config.seed,
    }
    return SplitData(
        train=ClipDataset(splits.train, train=True, **common),
        val=ClipDataset(splits.val, train=False, **common),
        test=ClipDataset(splits.test, train=False, **common),
    )
