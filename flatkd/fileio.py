"""Atomic writes: every result and checkpoint is written to a temporary file in the destination
directory, flushed, fsynced and renamed over the target, so a killed process leaves either the old
file or the new one, never a torn one.

Files get the usual permissions (0666 less the umask), not ``mkstemp``'s 0600.

Loading never unpickles arbitrary objects: tensors come from safetensors, other state from JSON,
and :func:`load_torch_state` uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flatkd.errors import InputFileError

if TYPE_CHECKING:  # torch and safetensors load lazily: the codec and CLI start-up need neither
    import torch


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import (os.umask can only be read by setting it, which is not thread-safe)
_UMASK = _read_umask()


#: temporary files are named ``.<stem>.p<pid>.<random><suffix>``: the PID tells whether the
#: process writing one is still alive (:func:`remove_stale_temporaries`)
_TEMP_NAME = re.compile(r"^\..*\.p(?P<pid>\d+)\.[A-Za-z0-9_]{8}[^/]*$")


def _temp_sibling(target: Path, suffix: str) -> str:
    """Create an empty temporary file beside ``target`` with the permissions a plain ``open``
    would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.p{os.getpid()}.", suffix=suffix, dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of :func:`atomic_open`/:func:`atomic_path` under ``folder`` whose
    writer is no longer alive (a killed run's leftovers); returns what was deleted."""
    removed = []
    for path in Path(folder).rglob(".*"):
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and not _alive(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    target = Path(path)
    tmp = _temp_sibling(target, ".tmp")
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that want a file name (np.save, PNG);
    rename it over ``path`` when the block succeeds. The temporary name keeps the suffix."""
    target = Path(path)
    tmp = _temp_sibling(target, target.suffix)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically (UTF-8)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`InputFileError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Save a flat name -> tensor mapping as safetensors, atomically, with the usual file mode.

    Identical tensors and metadata give identical bytes: safetensors writes its JSON header in
    hash-map order, so the header is re-serialised with sorted keys (the data offsets are relative
    to the data block and do not move)."""
    from safetensors.torch import save

    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    blob = save(contiguous, metadata=dict(metadata) if metadata else None)
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data block stays 8-byte aligned
    with atomic_open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little"))
        handle.write(text)
        handle.write(blob[8 + length :])


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing or corrupt file raises :class:`InputFileError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(f"{path}: corrupt or not a safetensors file ({exc})") from None


def read_tensor_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (empty when it has none), read from its header
    alone; a missing or corrupt file raises :class:`InputFileError`."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(f"{path}: corrupt or not a safetensors file ({exc})") from None


def save_torch_state(path: str | os.PathLike[str], state: Any) -> None:
    """Save nested state (optimizer, RNG) with ``torch.save``, atomically.

    Only objects that ``torch.load(weights_only=True)`` accepts may be stored: tensors, numbers,
    strings, and lists/tuples/dicts of them.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_torch_state(path: str | os.PathLike[str]) -> Any:
    """Load state saved by :func:`save_torch_state` without unpickling arbitrary objects."""
    import torch

    if not Path(path).is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a torn or foreign file
        raise InputFileError(f"{path}: corrupt or unsafe state file ({type(exc).__name__})") from None
