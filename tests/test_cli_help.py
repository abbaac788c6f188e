"""``flatkd --help`` and ``flatkd COMMAND --help`` are quick: building the help imports click and
the commands' option definitions, not torch, numpy, pandas or PyAV (``data inspect/transcode/
extract``: PyAV and numpy, not torch; no command's help imports torch); the lazily listed one-line
helps are the ones click would show."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from flatkd.cli import _COMMANDS, cli
from flatkd.cli.common import lazy_short_help
from flatkd.cli.data import _DATA_COMMANDS

HEAVY = ("torch", "numpy", "pandas", "av")


def _imported_after_help(*args: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported after building ``flatkd ARGS --help``."""
    code = (
        "import sys; from click.testing import CliRunner; from flatkd.cli import cli; "
        f"result = CliRunner().invoke(cli, {[*args, '--help']!r}); "
        "assert result.exit_code == 0, result.output; assert 'Usage:' in result.output; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize("command", [(), ("data",), ("report",), ("rank-modalities",)])
def test_help_imports_no_heavy_package(command: tuple[str, ...]) -> None:
    assert _imported_after_help(*command) == []


def test_no_command_help_imports_torch() -> None:
    """Every command's and subcommand's ``--help``, rendered in one fresh interpreter, leaves
    torch unimported: option choices and defaults come from light modules."""
    code = (
        "import sys, click; from click.testing import CliRunner; from flatkd.cli import cli\n"
        "def walk(group, path):\n"
        "    for name in group.list_commands(click.Context(group)):\n"
        "        command = group.get_command(click.Context(group), name)\n"
        "        yield [*path, name]\n"
        "        if isinstance(command, click.Group):\n"
        "            yield from walk(command, [*path, name])\n"
        "shown = []\n"
        "for args in walk(cli, []):\n"
        "    result = CliRunner().invoke(cli, [*args, '--help'])\n"
        "    assert result.exit_code == 0 and 'Usage:' in result.output, (args, result.output)\n"
        "    shown.append(' '.join(args))\n"
        "print('torch' in sys.modules); print(','.join(shown))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch_imported, shown = done.stdout.splitlines()
    assert {*_COMMANDS, *(f"data {name}" for name in _DATA_COMMANDS)} <= set(shown.split(","))
    assert torch_imported == "False"


@pytest.mark.parametrize("command", ["inspect", "transcode", "extract"])
def test_data_command_help_imports_no_torch(command: str) -> None:
    assert "torch" not in _imported_after_help("data", command)


@pytest.mark.parametrize("commands", [_COMMANDS, _DATA_COMMANDS])
def test_lazy_one_line_help_is_what_click_shows(commands: dict[str, str]) -> None:
    for name, spec in commands.items():
        module, attribute = spec.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        for limit in (30, 45, 70):
            assert lazy_short_help(spec, limit) == command.get_short_help_str(limit), name


def test_group_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1].split()
    assert all(name in listed for name in _COMMANDS)
