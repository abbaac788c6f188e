"""Pieces shared by the CLI subcommands: the lazy group, the tqdm progress factory, options."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from flatkd.errors import FlatkdError
from flatkd.progress import ProgressFactory

EXIT_USER_ERROR = 2

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


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (``lazy``: name ->
    ``"module:attribute"``), and which turns :class:`FlatkdError` into one line on stderr and exit
    status 2 (unless the root context has ``debug`` set)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlatkdError as exc:
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            click.echo(f"flatkd: error: {exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)
