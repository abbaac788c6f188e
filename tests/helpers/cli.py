"""Invoking ``flatkd`` in-process and checking its one-line errors (data, train, evaluate, distill, wise)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from flatkd.cli import cli


def run_flatkd(*args: str) -> Result:
    """``flatkd *args`` run in-process by click's test runner."""
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """The command failed with exit status 2 and a single ``flatkd: error: ...`` line on stderr
    (no traceback escaping) that contains every one of ``fragments``."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flatkd: error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
