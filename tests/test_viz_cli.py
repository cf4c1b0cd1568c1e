"""``nct-md interpolate``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mdtraj as md
import pytest

from nct_md.cli import main
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space

DATA = Path(__file__).resolve().parent.parent / "data"
TRAJ = DATA / "alanine-dipeptide-300K" / "phi-neg-c7eq-1.h5"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    data = load_phase_space([TRAJ], select="heavy", stride=4)
    model = NCT(n_couplings=2, hidden=16, epochs=2, progress=False).fit(data).fetch_model()
    path = tmp_path_factory.mktemp("model") / "model.pt"
    model.save(path)
    return path


def test_interpolate_writes_pdb_html_and_plots(model_file, tmp_path, capsys):
    out, page, plots = tmp_path / "path.pdb", tmp_path / "path.html", tmp_path / "plots"
    code = main(["interpolate", str(model_file), "--traj", str(TRAJ), "--from-frame", "3",
                 "--to-frame", "-1", "--frames", "6", "--modes", "3", "--out", str(out),
                 "--html", str(page), "--plots", str(plots)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["to_frame"] == md.load(str(TRAJ)).n_frames - 1 and summary["modes"] == 3
    path = md.load(str(out))
    assert path.n_frames == 6 and path.n_atoms == 10
    assert not re.search(r"https?://", page.read_text(), re.IGNORECASE)
    for name in ("ramachandran.png", "ramachandran.svg", "angles.png", "angles.svg"):
        assert (plots / name).stat().st_size > 0


@pytest.mark.parametrize("extra, message", [
    (["--to-frame", "100000"], "--to-frame 100000 is outside"),
    (["--to-frame", "1", "--modes", "0"], "modes"),
    (["--to-frame", "1", "--others", "b"], "invalid choice"),
    (["--to-frame", "1", "--html", "page.txt"], "--html must end in .html"),
    (["--to-frame", "1", "--frames", "1"], "--frames must be"),
])
def test_interpolate_bad_input_is_one_line_exit_2(model_file, tmp_path, capsys, extra,
                                                  message):
    argv = ["interpolate", str(model_file), "--traj", str(TRAJ), "--from-frame", "0",
            "--out", str(tmp_path / "p.pdb"), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_interpolate_keeps_existing_outputs(model_file, tmp_path, capsys):
    out = tmp_path / "p.pdb"
    out.write_text("keep")
    argv = ["interpolate", str(model_file), "--traj", str(TRAJ), "--from-frame", "0",
            "--to-frame", "1", "--out", str(out)]
    assert main(argv) == 2 and "exists" in capsys.readouterr().err
    assert out.read_text() == "keep"
    assert main([*argv, "--overwrite", "--frames", "3"]) == 0
    assert md.load(str(out)).n_frames == 3


def test_interpolate_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["interpolate", "--help"])
    assert exc.value.code == 0 and "--from-frame" in capsys.readouterr().out


def test_library_names_parameters(model_file, tmp_path):
    from nct_md.errors import NCTInputError
    from nct_md.viz.interpolate_files import interpolate_to_files

    with pytest.raises(NCTInputError, match="^to_frame 100000 is outside"):
        interpolate_to_files(model_file, TRAJ, 0, 100000, tmp_path / "p.pdb")
    summary = interpolate_to_files(model_file, TRAJ, 0, -1, tmp_path / "p.pdb", n_frames=3)
    assert summary["n_frames"] == 3 and summary["to_frame"] == md.load(str(TRAJ)).n_frames - 1
