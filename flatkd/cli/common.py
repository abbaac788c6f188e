"""Pieces shared by the CLI subcommands: the lazy group, the tqdm progress factory, options."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from flatkd.errors import FlatkdError
from flatkd.progress import ProgressFactory

#: exit status of an error the user can fix (one line on stderr, nothing done or lost)
EXIT_USER_ERROR = 2
#: exit status of a command that finished but some of its inputs failed (each named on stderr,
#: and in the command's record: the cache's manifest.json, the transcode summary)
EXIT_SOME_FAILED = 3
#: exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_INTERRUPTED = 130

#: what an interrupted command keeps and how to continue, by command name (``{run}``: its --run)
_INTERRUPT_ADVICE = {
    "train": "{run} keeps the last finished epoch; rerun with --resume to continue",
    "distill": "{run} keeps the last finished epoch; rerun with --resume to continue",
    "rank-modalities": "{run} keeps the finished measurements (flatness/); run the same command again to continue",
    "demo": "{run} keeps every finished step; run the same command again to continue",
    "cache": "the cache keeps the finished videos; run the same command again to continue",
    "transcode": "the finished outputs are kept (and skipped when run again with the same settings)",
}

#: what to do about an OS error, by errno name
_OS_ADVICE = {
    "ENOSPC": "the disk is full: free space (or choose another location) and run the command again; finished work is kept",
    "EDQUOT": "the disk quota is exhausted: free space and run the command again; finished work is kept",
    "EACCES": "permission denied: make it writable/readable for you, or choose another location",
    "EPERM": "operation not permitted: check its permissions, or choose another location",
    "EROFS": "the file system is read-only: choose a writable location",
    "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
    "EISDIR": "it is a folder where a file is needed: choose a file path",
    "ENOENT": "no such file or folder: check the path",
    "EEXIST": "it exists already and is in the way: remove it or choose another path",
    "ENAMETOOLONG": "the path is too long: choose a shorter one",
    "EMFILE": "too many open files: raise `ulimit -n` or lower --jobs/--workers",
    "ENOMEM": "out of memory: lower --jobs, --workers or the batch size",
    "EIO": "an input/output error from the disk: check the device, then run the command again",
}


#: options whose value is a path the command writes or reads
_PATH_OPTIONS = ("--run", "--out", "--data", "--cache", "--config", "--weights")


def _paths_of(args: list[str], options: tuple[str, ...] = _PATH_OPTIONS) -> list[str]:
    """The paths given to ``options`` in ``args`` (to name where an OS error happened when the
    error itself does not say, or which run an interrupted command leaves)."""
    paths = []
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in options:
            if eq:
                paths.append(value)
            elif i + 1 < len(args):
                paths.append(args[i + 1])
    return paths


def describe_os_error(exc: OSError, args: list[str] | None = None) -> str:
    """One line for an OS error: the path, the system's reason, and what to do."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    if where is None:
        paths = _paths_of(args or [])
        where = f"while working on {', '.join(paths)}" if paths else "(no file named)"
    advice = _OS_ADVICE.get(name, "check the path and its permissions, then run the command again")
    return f"{where}: {reason}{f' ({name})' if name else ''}; {advice}"


def describe_ffmpeg_error(exc: Exception) -> str:
    """One line for a PyAV/FFmpeg error that reached the CLI."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    where = getattr(exc, "filename", None)
    return (
        f"{where + ': ' if where else ''}FFmpeg: {reason}; check the video file and the size/format"
        " options (`flatkd data inspect FILE` shows what a file holds)"
    )


def describe_interrupt(args: list[str]) -> str:
    """One line for a command stopped by Ctrl-C: ``args`` is its command line from the command
    name on; names the run and what it keeps, where the command is known to resume."""
    command = args[0] if args else ""
    runs = _paths_of(args[1:], ("--run",))
    advice = _INTERRUPT_ADVICE.get(command)
    if advice is None:
        return f"interrupted{f' ({runs[0]})' if runs else ''}"
    return "interrupted: " + advice.format(run=runs[0] if runs else "the run")


def _is_ffmpeg_error(exc: BaseException) -> bool:
    """A PyAV error, recognised without importing PyAV (``flatkd --help`` stays quick)."""
    return any(cls.__module__.startswith("av.") and cls.__name__ == "FFmpegError" for cls in type(exc).__mro__)

#: tqdm on stderr, sized to the terminal, silent when stderr is not a terminal and
#: ``FLATKD_PROGRESS`` is unset (so logs and CI output stay readable).
progress: ProgressFactory = functools.partial(
    tqdm, file=sys.stderr, dynamic_ncols=True, leave=False, disable=None
)

run_option = click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (runs/NAME): holds config, checkpoints, metrics and figures.",
)

tensorboard_option = click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write every epoch's metrics as TensorBoard scalars into RUN/tensorboard (needs the tensorboard package).",
)


@contextlib.contextmanager
def epoch_scalars(run_dir: Path, enabled: bool, main: bool = True) -> Iterator[Callable[[Any], None] | None]:
    """The epoch callback of ``--tensorboard`` (:class:`flatkd.runs.tensorboard.EpochScalars` on
    ``RUN/tensorboard``, closed after the block), or None without the flag or on a process other
    than rank 0."""
    if not (enabled and main):
        yield None
        return
    from flatkd.runs.tensorboard import EpochScalars

    scalars = EpochScalars(run_dir / "tensorboard")
    try:
        yield scalars
    finally:
        scalars.close()



def settings_options(fields: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--config FILE`` and ``--set KEY=VALUE`` of a command whose settings are ``fields``
    (the dataclass the help names), resolved by :func:`flatkd.runs.settings.resolve`."""
    config = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"YAML file of settings: the fields of {fields}, or a run's config.yaml (its section is used).",
    )
    overrides = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one setting (dotted KEY, YAML VALUE); applied after --config and the flags. Repeatable.",
    )
    return lambda command: config(overrides(command))


def lazy_short_help(spec: str, limit: int = 45) -> str:
    """The one-line help click shows for the command ``spec`` (``"module:function"``): the start
    of the function's docstring, read from the module's source without importing the module."""
    module_name, function = spec.split(":")
    found = importlib.util.find_spec(module_name)
    if found is None or found.origin is None:
        raise ModuleNotFoundError(module_name)
    tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    docstring = next(
        ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == function
    )
    return click.Command(function, help=docstring).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (``lazy``: name ->
    ``"module:attribute"``), and which turns :class:`FlatkdError` into one line on stderr and exit
    status 2 (unless the root context has ``debug`` set)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's list of commands, as click writes it, but the one-line help of a command
        not imported yet is read from its module's source (:func:`lazy_short_help`), so that
        ``flatkd --help`` imports none of them (nor torch)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            spec = self._lazy.get(name)
            if spec is not None and spec.split(":")[0] not in sys.modules:
                rows.append((name, lazy_short_help(spec, limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """The one error boundary: a :class:`FlatkdError`, an ``OSError`` (disk full, permission
        denied, read-only or missing folder, ...) and a PyAV/FFmpeg error become one line
        ``flatkd: error: ...`` naming the path and what to do, and exit status 2; Ctrl-C becomes
        one line ``flatkd: interrupted...`` (:func:`describe_interrupt`) and exit status 130."""
        args = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if (ctx.find_root().obj or {}).get("debug"):
                traceback.print_exc()
            click.echo(f"flatkd: {describe_interrupt(args)}", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            if _is_ffmpeg_error(exc):
                message = describe_ffmpeg_error(exc)
            elif isinstance(exc, FlatkdError):
                message = str(exc)
            elif isinstance(exc, OSError):
                message = describe_os_error(exc, args)
            else:
                raise
            click.echo(f"flatkd: error: {message}", err=True)
            ctx.exit(EXIT_USER_ERROR)


class _RunLogHandler(logging.FileHandler):
    """A file handler that creates its file's folder when it opens the file."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextlib.contextmanager
def run_log(run_dir: Path, main: bool = True) -> Iterator[None]:
    """Append flatkd's INFO lines (per-epoch lines, stage lines) to ``RUN/train.log`` while the
    block runs, whatever stderr shows; the file (and the run directory) is created on the first
    line, so a command refused before it logs anything leaves no trace.

    ``main``: whether this process is rank 0 of a torchrun launch (or alone). The others write no
    log file and show only warnings and errors on stderr, so a launch logs each line once."""
    logger = logging.getLogger("flatkd")
    level = logger.level
    if not main:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        try:
            yield
        finally:
            logger.setLevel(level)
        return
    handler = _RunLogHandler(run_dir / "train.log", encoding="utf-8", delay=True)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    for other in logging.getLogger().handlers:  # stderr keeps the level -v chose
        if other.level == logging.NOTSET:
            other.setLevel(logging.getLogger().level)
    logger.setLevel(min(logging.getLogger().getEffectiveLevel(), logging.INFO))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
