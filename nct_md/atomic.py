"""Safe output files: checked before work starts, written whole, never replaced by surprise.

``check_output(path)`` runs before any long work, so a user learns about an unwritable or
already existing output at once. ``atomic_path(path)`` then writes to a temporary file beside the
target and moves it into place only when the writing succeeded: a crash, Ctrl-C or SIGTERM (the
CLI turns it into an exception) never leaves a half-written output. Without ``overwrite`` the
final step is an exclusive hard link, so of two runs writing the same new path exactly one
succeeds, even when both started before either finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nct_md.errors import NCTInputError, OutputExistsError


def _exists_message(target: Path) -> str:
    return f"{target} exists; choose another output path or pass --overwrite to replace it"


def check_output(path: str | os.PathLike, overwrite: bool = False,
                 create_parent: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    Parameters
    ----------
    path : path
        The output file (or folder) a command will write.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    create_parent : bool
        Create a missing parent folder (only for commands documented to do so); otherwise a
        missing folder is an error.

    Returns
    -------
    Path
        ``path`` as a Path.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(_exists_message(target))
    if target.is_dir() and overwrite:
        raise NCTInputError(f"{target} is a folder; pass a file name")
    folder = target.parent
    if not folder.is_dir():
        if not create_parent:
            raise NCTInputError(f"output folder {folder} does not exist; create it first")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NCTInputError(f"cannot create output folder {folder} ({exc.strerror}); "
                                "choose a writable location") from None
    try:  # a real write, since permissions alone miss read-only mounts and immutable folders
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise NCTInputError(f"cannot write to {folder} ({exc.strerror}); choose a writable "
                            "output location") from None
    return target


def _move(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move ``tmp`` onto ``target``: replacing it, or only where it does not exist yet."""
    if overwrite:
        os.replace(tmp, target)
    else:
        _move_exclusive(tmp, target)


def _move_exclusive(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` unless ``target`` exists (checked atomically)."""
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise OutputExistsError(_exists_message(target)) from None
    except OSError:  # no hard links on this file system: claim the name, then replace it
        pass
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        raise OutputExistsError(_exists_message(target)) from None
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    left untouched. With ``overwrite=False`` an existing ``path`` raises ``NCTInputError`` before
    anything is written, and again at the end if another process created ``path`` meanwhile
    (the move is an exclusive link, never a replacement).
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputExistsError(_exists_message(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        _move(tmp_path, target, overwrite)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_output_folder(folder: str | os.PathLike, names: list[str],
                        overwrite: bool = False) -> Path:
    """Refuse, before any work, a folder output whose files exist (without ``overwrite``) or
    whose location is not writable; the folder itself is created only by :func:`staged_folder`.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NCTInputError(f"{folder} exists and is not a folder; choose another output folder")
    if folder.is_dir():
        for name in names:
            check_output(folder / name, overwrite)
    else:
        check_output(folder)
    return folder


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success move its files into ``folder``.

    Every file appears only once all of them are written (an interrupted command leaves no
    partial set); without ``overwrite`` no existing file is replaced.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield stage
        folder.mkdir(exist_ok=True)
        items = sorted(stage.iterdir())
        if not overwrite:
            for item in items:
                if (folder / item.name).exists():
                    raise OutputExistsError(_exists_message(folder / item.name))
        for item in items:
            _move(item, folder / item.name, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
