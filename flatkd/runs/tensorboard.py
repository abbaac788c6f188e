"""TensorBoard scalars of a run's training epochs (``flatkd train/distill --tensorboard``).

Every committed epoch's metrics row (the one ``metrics.csv`` gets) becomes scalars
``<stage>/<modality>/<column>`` at step = the row's epoch (counted from 1, as everywhere), in ``RUN/tensorboard/``: ``tensorboard --logdir RUN/tensorboard``. The
writer is ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package
(``pip install 'flatkd[tensorboard]'``); a resumed run appends, and TensorBoard shows the
latest value of a repeated step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flatkd.errors import ConfigError

#: the columns of a metrics row that name the row rather than measure it
_LABELS = ("stage", "modality", "epoch")


class EpochScalars:
    """An epoch callback (:data:`flatkd.train.loop.EpochCallback`) writing each row's numbers as
    TensorBoard scalars under ``folder``; :meth:`close` flushes and closes the event file."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package: pip install 'flatkd[tensorboard]'"
                " (or pip install tensorboard)"
            ) from None
        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, row: Mapping[str, Any]) -> None:
        step, prefix = int(row["epoch"]), f"{row['stage']}/{row['modality']}"
        for column, value in row.items():
            if column not in _LABELS and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{column}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
