"""The shared core: strict config loading, atomic writes, safe loading, the CLI's error path."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import torch

from flatkd import config, fileio
from flatkd.errors import ConfigError, InputFileError


@dataclasses.dataclass
class Inner:
    lr: float = 0.1
    milestones: tuple[int, ...] = (10, 20)


@dataclasses.dataclass
class Outer:
    name: str = "x"
    kind: Literal["a", "b"] = "a"
    seed: int | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)
    tuned: Inner = dataclasses.field(default_factory=lambda: Inner(lr=0.5, milestones=(1,)))


def test_from_dict_roundtrip_and_coercion(tmp_path: Path) -> None:
    obj = config.from_dict(Outer, {"kind": "b", "inner": {"lr": 1, "milestones": [3]}})
    assert obj == Outer(kind="b", inner=Inner(lr=1.0, milestones=(3,)))
    # a partial section keeps the parent's defaults for that section, not Inner's own
    assert config.from_dict(Outer, {"tuned": {"lr": 0.2}}).tuned == Inner(lr=0.2, milestones=(1,))
    assert isinstance(obj.inner.lr, float)
    config.save(obj, tmp_path / "c.yaml")
    assert config.load(Outer, tmp_path / "c.yaml") == obj


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"lrr": 0.1}}, "config.inner: unknown key 'lrr' (did you mean 'lr'?)"),
        ({"kind": "c"}, "config.kind: expected one of 'a', 'b', got 'c'"),
        ({"seed": "1"}, "config.seed: expected int | None, got '1'"),
        ({"inner": {"milestones": 3}}, "config.inner.milestones: expected a list, got 3"),
    ],
)
def test_from_dict_rejects_bad_settings(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.from_dict(Outer, data)
    assert str(info.value) == message


def test_read_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.read_yaml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        config.read_yaml(tmp_path / "missing.yaml")


def test_atomic_open_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    fileio.write_text(target, "old")
    with pytest.raises(RuntimeError), fileio.atomic_open(target) as handle:
        handle.write("new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_tensor_roundtrip_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    fileio.save_tensors(path, {"w": torch.arange(6.0).view(2, 3)})
    assert torch.equal(fileio.load_tensors(path)["w"], torch.arange(6.0).view(2, 3))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(InputFileError, match="corrupt"):
        fileio.load_tensors(path)


def test_torch_state_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save({"obj": Inner()}, path)  # an arbitrary pickled class
    with pytest.raises(InputFileError, match="unsafe"):
        fileio.load_torch_state(path)
    fileio.save_torch_state(path, {"step": 3, "t": torch.ones(2)})
    assert fileio.load_torch_state(path)["step"] == 3


def test_cli_help_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flatkd", "--help"], capture_output=True, text=True, check=True
    )
    assert "flatkd: flatness analysis" in out.stdout
    version = subprocess.run(
        [sys.executable, "-m", "flatkd", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == "flatkd, version 0.1.0"


def test_atomic_files_get_umask_permissions(tmp_path: Path) -> None:
    fileio.write_text(tmp_path / "a.txt", "x")
    with fileio.atomic_path(tmp_path / "b.npz") as tmp:
        tmp.write_bytes(b"x")
    (tmp_path / "plain.txt").write_text("x")  # what open() gives under this process's umask
    expected = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == expected


def test_cli_and_codec_start_without_torch() -> None:
    code = "import sys, flatkd.cli, flatkd.fileio; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
