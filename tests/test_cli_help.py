"""``nct-md --help`` stays light: no torch or OpenMM import, well under a second."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nct_md.cli import COMMANDS, main
from nct_md.errors import NCTInputError
from nct_md.systems import alanine_dipeptide

NCT_MD = Path(sys.executable).with_name("nct-md")
#: generous for a command that takes about 0.1 s, yet failed by one that imports torch (2 s)
HELP_SECONDS = 1.0


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip()


def test_parser_imports_neither_torch_nor_openmm():
    code = ("import sys; from nct_md.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules, 'openmm' in sys.modules)")
    assert _run(code) == "False False"


def test_every_subcommand_help_is_light():
    commands = [name.replace("_", "-") for name in COMMANDS]
    code = ("import sys, contextlib, io\nfrom nct_md.cli import main\n"
            f"for name in {commands!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), "
            "contextlib.suppress(SystemExit):\n"
            "        main([name, '--help'])\n"
            "print(sorted(m for m in ('torch', 'openmm') if m in sys.modules))")
    assert _run(code) == "[]"


@pytest.mark.skipif(not NCT_MD.exists(), reason="the nct-md script is not installed")
def test_help_is_fast():
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([str(NCT_MD), "--help"], capture_output=True, timeout=60, check=True)
        best = min(best, time.perf_counter() - start)
    assert best < HELP_SECONDS, f"nct-md --help took {best:.2f} s"


def test_demo_data_from_environment_or_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(alanine_dipeptide.ENV_VAR, str(tmp_path))
    assert alanine_dipeptide.data_dir() == tmp_path
    monkeypatch.delenv(alanine_dipeptide.ENV_VAR)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(NCTInputError, match="pass --data DIR"):
        alanine_dipeptide.data_dir()
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data" in err
    assert main(["demo", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "alanine-dipeptide trajectories are missing" in capsys.readouterr().err
