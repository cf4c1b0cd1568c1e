"""Build and run ``plumed_call.cpp``: an exported CV file called from C++ exactly as PLUMED does.

``build(out)`` compiles the harness against the LibTorch inside the installed torch wheel (g++),
``run(exe, cv_file, frames)`` times it and returns its values and derivatives, so that the cost
per MD step is measured without Python in the loop and the numbers can be checked against the
Python call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_name("plumed_call.cpp")


def build(out: Path) -> Path | None:
    """Compile the harness into ``out/plumed_call`` (reused while newer than the source).

    Returns None when no C++ compiler is found.
    """
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    exe = out / "plumed_call"
    if exe.exists() and exe.stat().st_mtime > SOURCE.stat().st_mtime:
        return exe
    root = Path(torch.__file__).parent
    include = root / "include"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    command = [compiler, "-O2", "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", str(SOURCE),
               f"-I{include}", f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}",
               f"-L{root / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10",
               f"-Wl,-rpath,{root / 'lib'}", "-o", str(exe)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return exe


def run(exe: Path, cv_file: Path, frames: np.ndarray, repeats: int = 2000) -> dict:
    """Time ``cv_file`` on ``frames (F, n_in)`` nm, one thread.

    Returns ``us_per_call`` (PLUMED's sequence: forward, one backward per output),
    ``us_forward_backward`` (forward and one backward of the summed outputs), and the
    ``values (F, k)`` and ``derivatives (F, k, n_in)`` the C++ side computed for each frame.
    """
    workdir = Path(cv_file).parent
    frames_file, out_file = workdir / "frames.txt", workdir / "plumed_call_out.txt"
    with open(frames_file, "w") as handle:
        handle.write(f"{frames.shape[0]} {frames.shape[1]}\n")
        np.savetxt(handle, frames.astype(np.float32))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([str(exe), str(cv_file), str(frames_file), str(repeats),
                             str(out_file)], check=True, capture_output=True, text=True, env=env)
    figures = dict(line.split() for line in result.stdout.splitlines())
    k = int(figures["n_out"])
    table = np.loadtxt(out_file, ndmin=2)
    return {"us_per_call": float(figures["us_per_call"]),
            "us_forward_backward": float(figures["us_forward_backward"]),
            "values": table[:, :k], "derivatives": table[:, k:].reshape(len(table), k, -1)}
