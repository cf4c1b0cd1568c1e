"""The exploration folder: its settings, the ``explore.json`` log and atomic iteration folders.

Layout of ``DIR``::

    settings.json   settings of the run (a resumed run must use the same)
    explore.json    one JSON object per line, one line per completed iteration
    iter-00/        plain MD (plain.h5) or copies of the start trajectories
    iter-NN/        model.pt, metad/ (an nct-md metad folder), cvs.csv

An iteration is built in a staging folder ``DIR/.iter-NN.stage-*``, renamed to ``iter-NN`` when
all its files are written, and is complete once its ``explore.json`` line is written (the log
is rewritten atomically). A resumed run discards staging folders and iteration folders without
a line, and redoes those iterations.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nct_md.atomic import atomic_path, check_output
from nct_md.errors import NCTInputError

SETTINGS = "settings.json"
LOG = "explore.json"
_ITERATION = re.compile(r"iter-(\d+)$")


def iteration_dir(folder: Path, iteration: int) -> Path:
    """The folder of a completed ``iteration``."""
    return Path(folder) / f"iter-{iteration:02d}"


def read_records(folder: Path) -> list[dict]:
    """The completed iterations' records of ``folder/explore.json`` (empty if none)."""
    path = Path(folder) / LOG
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for k, record in enumerate(records):
        if record.get("iteration") != k:
            raise NCTInputError(f"{path} line {k + 1} is not iteration {k}; it was edited by "
                                "hand: restore it or choose another --out")
    return records


def append_record(folder: Path, records: list[dict], record: dict) -> None:
    """Append ``record`` to ``records`` and rewrite ``folder/explore.json`` atomically."""
    records.append(record)
    with atomic_path(Path(folder) / LOG) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def _discard_partial(folder: Path, n_completed: int) -> None:
    """Remove staging folders and iteration folders of iterations without a log line."""
    for child in folder.iterdir():
        match = _ITERATION.match(child.name)
        if child.is_dir() and (child.name.startswith(".iter-")
                               or (match and int(match.group(1)) >= n_completed)):
            shutil.rmtree(child)


def open_folder(folder: str | Path, settings: dict, resume: bool) -> tuple[list[dict], bool]:
    """Create the exploration folder, or reopen it with ``resume``.

    Returns the completed iterations' records and whether the folder was created now. An
    existing folder without ``resume``, or one started with other ``settings`` (JSON-able),
    is refused with NCTInputError.
    """
    folder = Path(folder)
    settings = json.loads(json.dumps(settings))
    if folder.exists() and not resume:
        raise NCTInputError(f"output folder {folder} exists; pass --resume to continue it, or "
                            "choose another --out")
    if not folder.exists():
        check_output(folder, create_parent=True)
        folder.mkdir()
        with atomic_path(folder / SETTINGS) as tmp:
            tmp.write_text(json.dumps(settings, indent=2))
        return [], True
    try:
        stored = json.loads((folder / SETTINGS).read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise NCTInputError(f"{folder} is not an nct-md explore folder ({SETTINGS} is missing); "
                            "choose another --out") from None
    differ = sorted(k for k in stored.keys() | settings.keys() if stored.get(k) != settings.get(k))
    if differ:
        raise NCTInputError(f"--resume with settings other than those {folder} was started with "
                            f"({', '.join(differ)}); use the same settings or another --out")
    records = read_records(folder)
    _discard_partial(folder, len(records))
    return records, False


@contextlib.contextmanager
def staged_iteration(folder: Path, iteration: int) -> Iterator[Path]:
    """Yield a staging folder; rename it to :func:`iteration_dir` when the block succeeds
    (removed when it fails)."""
    stage = Path(tempfile.mkdtemp(prefix=f".iter-{iteration:02d}.stage-", dir=folder))
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the usual folder mode
    try:
        yield stage
        stage.rename(iteration_dir(folder, iteration))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def relocate_outputs(metad_json: Path, stage: Path, final: Path) -> None:
    """Rewrite the output paths that ``metad.json`` records from ``stage`` to ``final``."""
    summary = json.loads(metad_json.read_text())
    summary["outputs"] = {name: str(final / Path(path).relative_to(stage))
                          for name, path in summary["outputs"].items()}
    with atomic_path(metad_json) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
