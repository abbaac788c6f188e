"""Stopping a training loop at a chosen epoch, for the kill-and-resume tests."""

from __future__ import annotations

from collections.abc import Callable


class Interrupt(Exception):
    """Raised by :func:`kill_after`'s callback: stands in for a killed process."""


def kill_after(stage: str, epoch: int) -> Callable[[dict], None]:
    """An ``on_epoch_end`` callback that raises :class:`Interrupt` once ``stage`` finishes ``epoch``
    (counted from 1, as the metrics rows count)."""

    def callback(row: dict) -> None:
        if (row["stage"], row["epoch"]) == (stage, epoch):
            raise Interrupt

    return callback
