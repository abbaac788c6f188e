"""The run directory: where every command reads its inputs and writes its results.

Layout (``runs/NAME/``)::

    config.yaml                       resolved settings: ``data`` (dataset, cache, split, classes),
                                      ``train.<modality>`` (flatkd.train.TrainConfig); later
                                      stages add their own sections
    checkpoints/<stage>/<modality>.safetensors   best weights of a stage (chosen on validation),
                                      the whole multi-exit network (input BN, backbone, ICs);
                                      metadata: epoch, val metric, preset, modality
    checkpoints/<stage>/<modality>.resume.pt     resume state after the last finished epoch:
                                      weights, optimiser, best so far, metrics history (one
                                      atomic file, so a kill never leaves a torn state)
    metrics.csv                       one row per (stage, modality, epoch): stage, modality,
                                      epoch, lr, train_loss, train_acc, val_loss, val_acc,
                                      val_acc_exit0.., seconds (whole epoch), clips_per_s
                                      (training throughput), data_wait (share of training time
                                      spent waiting for data)
    logits/<stage>/<modality>.<split>.safetensors   ``logits`` [N, n_exits, K], ``labels`` [N]
                                      (the training-time view: centred segments, centre crop);
                                      metadata ``keys``: the N clips' cache keys as a JSON list
                                      (absent in files of older versions)
    logits/<stage>/<modality>.<split>.<view>.safetensors   the same under a test protocol of
                                      ``flatkd evaluate`` (view ``25x10``: 25 segments x 10 crops)
    macs.json                         MACs per clip of every exit (flatkd.models.macs):
                                      {modality: {"backbone": [up to exit 0's stage, ...],
                                      "head": [exit 0's head alone, ...]}}; the path to exit k
                                      costs backbone[k] + head[k]
    flatness.csv, chain.json, wise.json, figures/   written by later stages

Stages: ``backbone`` (CE on the final exit), ``ic-ce`` (ICs with CE, backbone frozen), later e.g.
``ic-pkd``. Every file is written atomically; files shared by concurrent commands (``config.yaml``,
``metrics.csv``, ``macs.json``) are updated under an exclusive lock on ``.lock``, so several
modalities may train into one run at the same time.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from flatkd.config import read_yaml
from flatkd.errors import FlatkdError, InputFileError, MissingPrerequisiteError
from flatkd.fileio import (
    atomic_open,
    load_tensors,
    read_json,
    read_tensor_metadata,
    remove_stale_temporaries,
    save_tensors,
    write_json,
    write_text,
)
from flatkd.runs.stages import TRAIN_STAGES
from flatkd.train.checkpoint import StageFiles


class RunDir:
    """Paths and small shared files of one run directory (created on first write)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.csv"
        self.macs_path = self.path / "macs.json"
        self.flatness_path = self.path / "flatness.csv"
        self.flatness_summary_path = self.path / "flatness_summary.csv"
        self.chain_path = self.path / "chain.json"
        self.wise_path = self.path / "wise.json"
        self.wise_curves_path = self.path / "wise.csv"
        self.wise_controls_path = self.path / "wise_controls.csv"
        self.genkd_controls_path = self.path / "genkd_controls.csv"
        self.distill_table_path = self.path / "distill.csv"
        self.distill_markdown_path = self.path / "distill.md"
        self.report_path = self.path / "report.md"
        self.demo_steps_path = self.path / "demo_steps.csv"
        self.figures_dir = self.path / "figures"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- per-stage files ------------------------------------------------------------------
    def checkpoint_path(self, stage: str, modality: str) -> Path:
        """Best weights (safetensors) of ``modality``'s network after ``stage``."""
        return self.path / "checkpoints" / stage / f"{modality}.safetensors"

    def existing_checkpoint(self, stage: str, modality: str) -> Path:
        """:meth:`checkpoint_path` if the file exists, else a :class:`MissingPrerequisiteError`
        naming the command that writes it."""
        path = self.checkpoint_path(stage, modality)
        if not path.is_file():
            raise MissingPrerequisiteError(f"{path} is missing: {_producer(self, stage, modality)}")
        return path

    def resume_path(self, stage: str, modality: str) -> Path:
        return self.path / "checkpoints" / stage / f"{modality}.resume.pt"

    def stage_files(self, stage: str, modality: str) -> StageFiles:
        """Where the training loop writes ``stage`` of ``modality``: best weights, resume state,
        its rows of ``metrics.csv``."""
        return StageFiles(
            self.checkpoint_path(stage, modality),
            self.resume_path(stage, modality),
            functools.partial(self.write_metrics, stage, modality),
            str(self.path),
        )

    def flatness_store(self, modality: str, exit_index: int, subset: int = 0) -> Path:
        """Folder of the partial and finished flatness results of one exit of ``modality`` on one
        data subset."""
        return self.path / "flatness" / f"{modality}.exit{exit_index}" / f"subset{subset}"

    def logits_path(self, stage: str, modality: str, split: str, view: str | None = None) -> Path:
        """Logits of one split; ``view`` names a test protocol (``25x10``), None the training-time view."""
        suffix = "" if view is None else f".{view}"
        return self.path / "logits" / stage / f"{modality}.{split}{suffix}.safetensors"

    # ---- config.yaml -----------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """The whole ``config.yaml`` (empty before the first command wrote it)."""
        return read_yaml(self.config_path) if self.config_path.is_file() else {}

    def section(self, *keys: str, needs: str) -> Any:
        """``config.yaml[keys[0]][keys[1]]...``; if absent, :class:`MissingPrerequisiteError`
        telling the user to run ``needs`` first."""
        node: Any = self.read_config()
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                where = ".".join(keys)
                raise MissingPrerequisiteError(f"{self.config_path} has no '{where}': run `{needs}` first")
            node = node[key]
        return node

    def set_section(self, keys: Sequence[str], value: Any) -> None:
        """Set ``config.yaml[keys...] = value`` (a read-modify-write under the run's lock)."""
        with self.lock():
            config = self.read_config()
            node = config
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
            write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))

    # ---- metrics.csv ----------------------------------------------------------------------
    def write_metrics(self, stage: str, modality: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows of (``stage``, ``modality``) in ``metrics.csv`` by ``rows``."""
        with self.lock():
            table = self.read_metrics()
            if not table.empty:
                table = table[~((table["stage"] == stage) & (table["modality"] == modality))]
            new = pd.DataFrame([{"stage": stage, "modality": modality, **row} for row in rows])
            table = new if table.empty else pd.concat([table, new], ignore_index=True)
            with atomic_open(self.metrics_path, "w", encoding="utf-8", newline="") as handle:
                table.to_csv(handle, index=False)

    def read_metrics(self) -> pd.DataFrame:
        """``metrics.csv`` as a DataFrame (empty if not written yet).

        A file that is cut short (no final newline, a row with fewer fields than the header) or
        unparsable is refused with :class:`InputFileError`, never read in part, so no later write
        can replace it with what a partial read kept."""
        if not self.metrics_path.is_file():
            return pd.DataFrame()
        fix = (
            "move it away: the next `flatkd train --resume` (or distill) rewrites each stage's rows from its"
            " resume state"
        )
        try:
            text = self.metrics_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputFileError(f"{self.metrics_path}: not a readable CSV (not UTF-8); {fix}") from None
        if not text.endswith("\n"):
            raise InputFileError(f"{self.metrics_path}: truncated (the last row is cut short); {fix}")
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or not rows[0] or any(len(row) != len(rows[0]) for row in rows[1:]):
            raise InputFileError(f"{self.metrics_path}: truncated or damaged (rows of unequal length); {fix}")
        try:
            table = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputFileError(f"{self.metrics_path}: not a readable CSV ({exc}); {fix}") from None
        missing = {"stage", "modality", "epoch"} - set(table.columns)
        if missing:
            raise InputFileError(f"{self.metrics_path}: no column {sorted(missing)[0]!r}; {fix}")
        return table

    # ---- logits and MACs -------------------------------------------------------------------
    def save_logits(
        self, stage: str, modality: str, split: str, logits: torch.Tensor, labels: torch.Tensor,
        view: str | None = None, keys: Sequence[str] | None = None,
    ) -> None:
        """Store ``logits`` [N, n_exits, K] and ``labels`` [N] of one split (and test ``view``),
        with the clip ``keys`` (cache keys, ``Class/v_..._g08_c01``) of the N rows when known, as
        the file's ``keys`` metadata (a JSON list)."""
        if keys is not None and len(keys) != len(labels):
            raise ValueError(f"{len(keys)} clip keys for {len(labels)} clips")
        metadata = None if keys is None else {LOGIT_KEYS: json.dumps(list(keys))}
        save_tensors(self.logits_path(stage, modality, split, view), {"logits": logits, "labels": labels}, metadata)

    def load_logits(
        self, stage: str, modality: str, split: str, view: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, n_exits, K], labels [N])`` saved by :meth:`save_logits`."""
        path = self.logits_path(stage, modality, split, view)
        if not path.is_file():
            raise MissingPrerequisiteError(f"{path} is missing: {_producer(self, stage, modality)}")
        tensors = load_tensors(path)
        if set(tensors) != {"logits", "labels"}:
            raise InputFileError(f"{path}: expected tensors 'logits' and 'labels', found {sorted(tensors)}")
        if not torch.isfinite(tensors["logits"]).all():
            raise InputFileError(
                f"{path}: the {modality} network's logits after stage '{stage}' are not finite (NaN or inf):"
                f" the network diverged or its weights are damaged; {_retrain(self, stage, modality)}"
            )
        return tensors["logits"], tensors["labels"]

    def load_logit_keys(self, stage: str, modality: str, split: str, view: str | None = None) -> list[str] | None:
        """The clip key of every row of :meth:`load_logits`, in order; None for a file written
        before logits carried their keys (or from a dataset without keys)."""
        path = self.logits_path(stage, modality, split, view)
        if not path.is_file():
            raise MissingPrerequisiteError(f"{path} is missing: {_producer(self, stage, modality)}")
        text = read_tensor_metadata(path).get(LOGIT_KEYS)
        if text is None:
            return None
        try:
            keys = json.loads(text)
        except json.JSONDecodeError:
            keys = None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise InputFileError(f"{path}: its '{LOGIT_KEYS}' metadata is not a list of clip keys; {_retrain(self, stage, modality)}")
        return keys

    def update_macs(self, modality: str, backbone: Sequence[int], head: Sequence[int]) -> None:
        """Record, per exit of ``modality``'s network, the MACs per clip of the backbone up to the
        exit and of the exit's head alone, in ``macs.json``."""
        if len(backbone) != len(head):
            raise ValueError(f"{len(backbone)} backbone costs but {len(head)} head costs")
        with self.lock():
            table = read_json(self.macs_path) if self.macs_path.is_file() else {}
            table[modality] = {"backbone": [int(m) for m in backbone], "head": [int(m) for m in head]}
            write_json(self.macs_path, table)

    def read_macs(self) -> dict[str, list[int]]:
        """Modality -> MACs per clip of the path to each exit (backbone up to it + its head)."""
        return {m: [b + h for b, h in zip(*costs)] for m, costs in self._macs_table().items()}

    def read_head_macs(self) -> dict[str, list[int]]:
        """Modality -> MACs per clip of each exit's head alone."""
        return {m: head for m, (_, head) in self._macs_table().items()}

    def _macs_table(self) -> dict[str, tuple[list[int], list[int]]]:
        """Modality -> (backbone MACs, head MACs) per exit, checked."""
        if not self.macs_path.is_file():
            raise MissingPrerequisiteError(
                f"{self.macs_path} is missing: run `flatkd train --run {self.path}` first"
            )
        table = read_json(self.macs_path)
        try:
            costs = {str(m): ([int(b) for b in c["backbone"]], [int(h) for h in c["head"]]) for m, c in table.items()}
        except (AttributeError, KeyError, TypeError, ValueError):
            costs = {}
        if not costs or any(len(b) != len(h) for b, h in costs.values()):
            raise InputFileError(
                f"{self.macs_path}: expected backbone and head MACs per modality (an older format?); run"
                f" `flatkd evaluate --run {self.path}` to rewrite it"
            )
        return costs

    def get_section(self, keys: Sequence[str]) -> Any:
        """``config.yaml[keys...]``, or :data:`ABSENT`."""
        node: Any = self.read_config()
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return ABSENT
            node = node[key]
        return node

    def restore_section(self, keys: Sequence[str], value: Any) -> None:
        """Put ``config.yaml[keys...]`` back to ``value`` (:data:`ABSENT`: remove it, and parents
        left empty) under the run's lock; other sections are untouched."""
        with self.lock():
            config = self.read_config()
            node = config
            parents = []
            for key in keys[:-1]:
                parents.append((node, key))
                node = node.setdefault(key, {})
            if value is ABSENT:
                node.pop(keys[-1], None)
                for parent, key in reversed(parents):
                    if parent.get(key) == {}:
                        parent.pop(key)
            else:
                node[keys[-1]] = value
            if config:
                write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))
            else:
                self.config_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def provisional(self, sections: Mapping[tuple[str, ...], Sequence[Path]]) -> Iterator[None]:
        """Sections of ``config.yaml`` a command is about to write, each kept only if the command
        gets as far as committing something for it: ``sections`` maps each section to the files
        whose appearance or change records that progress (e.g. its resume states). When the block
        raises, every section none of whose files changed goes back to what it was before, so a
        refused or failed command changes nothing in the run."""
        before = {keys: self.get_section(keys) for keys in sections}
        stamps = {keys: [_stamp(path) for path in files] for keys, files in sections.items()}
        try:
            yield
        except BaseException:
            for keys, files in sections.items():
                unchanged = [_stamp(path) for path in files] == stamps[keys]
                if unchanged and self.get_section(keys) != before[keys]:
                    self.restore_section(keys, before[keys])
            raise

    @contextlib.contextmanager
    def hold(self, job: str) -> Iterator[None]:
        """Hold the run's lock for ``job`` (e.g. ``train.mv``) while the block runs: a second
        command for the same job is refused with the holder's PID. The lock is ``fcntl.flock`` on
        ``locks/<job>.pid``, which the kernel releases when the holder dies, so a stale lock left by a
        killed process is simply taken over. Taking the lock also removes the temporary files that
        killed processes left in the run directory."""
        folder = self.path / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{job}.pid"
        handle = open(path, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunBusyError(
                    f"{self.path} is in use: {job} is running there (pid {holder}); wait for it to"
                    " finish, or stop it, then run the command again"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            remove_stale_temporaries(self.path)
            yield
        finally:
            handle.close()

    @contextlib.contextmanager
    def writing(
        self, jobs: Sequence[str], sections: Mapping[tuple[str, ...], Sequence[Path]], *, main: bool = True
    ) -> Iterator[None]:
        """:meth:`hold` every one of ``jobs`` and keep ``sections`` :meth:`provisional` while the
        block runs, in the process that writes (``main``; the other processes of a torchrun
        launch pass straight through): what every command that records settings and then
        computes runs under."""
        with contextlib.ExitStack() as stack:
            if main:
                for job in jobs:
                    stack.enter_context(self.hold(job))
                stack.enter_context(self.provisional(sections))
            yield

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the run directory's shared files (``fcntl.flock`` on ``.lock``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


#: the metadata entry of a logits file that lists its clips' keys
LOGIT_KEYS = "keys"

#: marks a section that ``config.yaml`` does not have
ABSENT: Any = object()


class RunBusyError(FlatkdError):
    """Another live process holds the run directory's lock for the same job."""


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _retrain(run: RunDir, stage: str, modality: str) -> str:
    """What to do about a diverged network of ``stage``."""
    if stage in TRAIN_STAGES:
        return f"train it again: `flatkd train --modality {modality} --run NEW_RUN` with a lower learning rate"
    return f"run the command that trains stage '{stage}' of {modality} again, with a lower learning rate"


def non_finite_network_error(run: RunDir, path: Path, stage: str, modality: str, what: str) -> InputFileError:
    """The one-line refusal of a network whose weights or outputs are not finite."""
    return InputFileError(
        f"{path}: the {modality} network of stage '{stage}' has non-finite {what} (NaN or inf): it diverged"
        f" or its file is damaged; {_retrain(run, stage, modality)}"
    )


def _producer(run: RunDir, stage: str, modality: str) -> str:
    if stage in TRAIN_STAGES:
        return f"run `flatkd train --run {run.path} --modality {modality}` first"
    return f"run the command that trains stage '{stage}' first"
