"""Checkpoints that know what they belong to: fingerprints, safe loading, a lock, signals.

A training checkpoint stores a *fingerprint* (plain JSON-able dict) of the data and settings of
its run; a resumed run compares it with its own and refuses a checkpoint of other data or
settings, naming the first difference (:func:`first_difference`). :func:`load_checkpoint`
turns an unreadable file into one line. :func:`checkpoint_lock` keeps two runs from sharing a
checkpoint (``CKPT.lock`` holds the owner's pid; a lock of a dead process is taken over), and
:class:`InterruptSignals` turns Ctrl-C and SIGTERM into a flag that the training loop checks
after each step, so it stops at a consistent state.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from nct_md.errors import NCTInputError
from nct_md.md.data import PhaseSpaceData

#: How a user starts over when a checkpoint cannot be resumed.
FRESH_HINT = "pass --restart (API: restart=True) to delete it and start fresh"


def content_hash(*tensors: torch.Tensor) -> str:
    """A short BLAKE2b hex digest of the tensors' bytes (dtype and shape included)."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def file_records(paths: Sequence[str | os.PathLike]) -> list[str]:
    """``"ABSOLUTE_PATH (N bytes)"`` for each file, for a data fingerprint."""
    return [f"{Path(p).resolve()} ({Path(p).stat().st_size} bytes)" for p in paths]


def data_fingerprint(data: PhaseSpaceData, validation: PhaseSpaceData | None = None,
                     files: Sequence[str | os.PathLike] | None = None) -> dict:
    """What identifies training data: files, frame counts, atoms, temperature, content hashes.

    ``files`` (the trajectory and topology files, when known) add their paths and sizes.
    Hashes cover the positions ``q`` ``(n, 3N)`` nm and, when they come from stored velocities,
    the momenta (drawn momenta follow from the seed).
    """
    tensors = [data.q, data.p] if data.has_velocities else [data.q]
    fingerprint = {
        "files": file_records(files) if files is not None else None,
        "frames per trajectory": [int(n) for n in data.boundaries[1:] - data.boundaries[:-1]],
        "atom indices": [int(i) for i in data.atom_indices],
        "temperature (K)": float(data.temperature),
        "momenta": str(data.info.momenta),
        "positions hash": content_hash(*tensors),
    }
    if validation is not None:
        fingerprint["validation frames"] = len(validation)
        fingerprint["validation hash"] = content_hash(validation.q, validation.p)
    return fingerprint


def _short(value: object, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def first_difference(saved: dict | None, current: dict) -> str | None:
    """The first entry of ``current`` (``{section: {name: value}}``) that ``saved`` differs in.

    Returns a phrase such as ``"settings: lr was 0.002, now 0.001"``, or None when they agree.
    """
    if not isinstance(saved, dict):
        return "it holds no record of its data and settings (made by an older nct-md)"
    for section, entries in current.items():
        old_entries = saved.get(section) or {}
        for name, value in entries.items():
            old = old_entries.get(name)
            if old == value:
                continue
            if name.endswith("hash"):
                return f"{section}: the {name.removesuffix(' hash')} differ (same shapes)"
            return f"{section}: {name} was {_short(old)}, now {_short(value)}"
    return None


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint (tensors and plain containers only); one-line error if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise NCTInputError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
                            f"{FRESH_HINT}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise NCTInputError(f"{path} is not a training checkpoint; {FRESH_HINT}")
    return state


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _lock_owner(lock: Path) -> int | None:
    """The pid written in ``lock``; None if it is gone or holds no pid."""
    try:
        text = lock.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def checkpoint_lock(checkpoint: Path) -> Iterator[Path]:
    """Hold ``CHECKPOINT.lock`` (exclusively created, holding this pid) while training.

    A lock whose pid no longer runs is stale and taken over; a live one (or one without a pid)
    refuses with one line. The lock is removed on exit, also after an error. Pids are checked
    on this machine only (runs sharing a folder across machines are not detected).
    """
    lock = checkpoint.with_name(checkpoint.name + ".lock")
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is None and lock.exists():
                raise NCTInputError(f"{lock} exists but names no process; if no other run uses "
                                    f"{checkpoint}, delete {lock}") from None
            if owner is not None and _pid_alive(owner):
                raise NCTInputError(f"another run (pid {owner}) is training with checkpoint "
                                    f"{checkpoint}; wait for it or choose another --out") from None
            if owner is not None and _lock_owner(lock) == owner:  # stale: take it over
                lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        break
    else:
        raise NCTInputError(f"could not take the lock {lock}; retry, or delete it if no other "
                            "run is active")
    try:
        yield lock
    finally:
        if _lock_owner(lock) == os.getpid():
            lock.unlink(missing_ok=True)


class InterruptSignals:
    """While active, SIGINT and SIGTERM set :attr:`requested` instead of stopping at once.

    The training loop checks the flag after each step; a second signal raises
    ``KeyboardInterrupt`` at once. Outside the main thread (where signal handlers cannot be
    installed) signals keep their usual behaviour.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> InterruptSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
