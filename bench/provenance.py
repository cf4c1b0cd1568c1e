"""What a recorded bench output carries and how it is written: its commit, and one JSON file
that is never overwritten (refused before the run starts, and again when it is written)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError


def commit() -> str:
    """The short hash of the checkout's HEAD ("" outside a git checkout)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent).stdout.strip()


def refuse_existing(path: Path, option: str) -> None:
    """Raise NCTInputError if ``path`` (given by the command-line ``option``) exists, so a long
    run stops before it starts rather than at its end."""
    if path.exists():
        raise NCTInputError(f"{path} exists; choose another {option}")


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` as indented JSON, atomically; an existing file is refused
    (``NCTInputError`` from :func:`nct_md.atomic.atomic_path`)."""
    with atomic_path(path, overwrite=False) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
