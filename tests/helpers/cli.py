"""Invoking ``flatkd`` in-process (or as processes under torchrun) and checking its one-line errors
(data, train, evaluate, distill, wise)."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner, Result

from flatkd.cli import cli


def run_flatkd(*args: str) -> Result:
    """``flatkd *args`` run in-process by click's test runner."""
    return CliRunner().invoke(cli, list(args))


def run_flatkd_processes(processes: int, *args: str, timeout: float = 300) -> str:
    """``flatkd *args`` as a subprocess: plain with one process, under ``torchrun --standalone
    --nproc_per_node processes`` (gloo on the CPU, one thread each) with more. Returns stdout;
    a failure fails the test with the end of stderr."""
    flatkd = [sys.executable, "-m", "flatkd"]
    if processes > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        flatkd = [sys.executable, *launcher, "-m", "flatkd", "--"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*flatkd, *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


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
