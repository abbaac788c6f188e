"""Test-wide settings (one torch thread per xdist worker) and the fixtures several test modules share.

``demo_run`` is the tiny end-to-end run that the demo, report and notebook tests share, built by
the real ``flatkd demo`` at a tiny size (:mod:`helpers.demo`), once per test session: the first
xdist worker that needs it builds it under a file lock in the session's shared temporary folder,
the others wait and reuse it.

``dataset`` is a tiny real synthetic set (PyAV-encoded, cache built) for the ``flatkd train`` and
``flatkd distill`` tests, made once per test module.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from filelock import FileLock
from helpers.demo import DemoRun, demo_args

from flatkd.data.cache import build_cache, default_cache_dir
from flatkd.data.dataset_splits import list_videos
from flatkd.data.synth import SynthSettings, generate_synthetic

torch.set_num_threads(1)

#: The ``dataset`` fixture's synthetic set: 4 classes of 8 clips in groups of 2, 26 frames of 64x48.
TINY_SYNTH = SynthSettings(classes=4, clips_per_class=8, clips_per_group=2, frames=26, width=64, height=48, seed=3)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DemoRun:
    """A tiny, complete ``flatkd demo`` run (trained, ranked, CE + PKD distilled, WISE, report)."""
    from flatkd.cli import cli

    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "demo"
    output = root / "output.txt"
    with FileLock(f"{root}.lock"):
        if not output.is_file():
            result = CliRunner().invoke(cli, demo_args(root / "run", root / "data"))
            assert result.exit_code == 0, result.output
            output.write_text(result.output)
    return DemoRun(root / "run", root / "data", output.read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:data:`TINY_SYNTH` generated and cached under a fresh temporary folder."""
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(root, TINY_SYNTH, jobs=1)
    build_cache(list_videos(root), default_cache_dir(root), jobs=1)
    return root
