"""Build and run ``plumed_call.cpp``: CV files called from C++ exactly as PLUMED does.

``build(out)`` compiles the harness against the LibTorch inside the installed torch wheel (g++);
``run_interleaved(exe, cv_files, frames)`` times several files in one process, in alternating
rounds, and returns each one's timings, values and derivatives; ``run(exe, cv_file, frames)``
does it for one file. The cost per MD step is so measured without Python in the loop, and the
numbers can be checked against the Python call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_name("plumed_call.cpp")


def build(out: Path) -> Path | None:
    """Compile the harness into ``out/plumed_call`` (reused while newer than the source).

    Returns None when no C++ compiler is found; raises RuntimeError with the compiler's
    messages when the build fails.
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
    compiled = subprocess.run(command, capture_output=True, text=True)
    if compiled.returncode != 0:
        raise RuntimeError(f"building {SOURCE.name} failed:\n{compiled.stderr[-4000:]}")
    return exe


def run_interleaved(exe: Path, cv_files: list[Path], frames: np.ndarray, repeats: int = 200,
                    rounds: int = 21, freeze: bool = False) -> list[dict]:
    """Time every file of ``cv_files`` on ``frames (F, n_in)`` nm in one process, one thread.

    Each of ``rounds`` rounds times ``repeats`` calls of every file in turn (the order reversed
    every other round). ``freeze``: load as current PLUMED does (eval, freeze,
    optimize_for_inference); otherwise plain ``torch::jit::load``.

    Returns, per file, ``us_per_call`` (PLUMED's sequence: forward, one backward per output)
    and ``us_forward_backward`` (forward and one backward of the summed outputs), each a list of
    one time per round (us), and the ``values (F, k)`` and ``derivatives (F, k, n_in)`` the C++
    side computed for each frame; or ``{"error": message}`` for a file that failed to load or
    to run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        frames_file = workdir / "frames.txt"
        with open(frames_file, "w") as handle:
            handle.write(f"{frames.shape[0]} {frames.shape[1]}\n")
            np.savetxt(handle, frames.astype(np.float32))
        outputs = [workdir / f"out-{i}.txt" for i in range(len(cv_files))]
        command = [str(exe), *(["--freeze"] if freeze else []), str(frames_file), str(repeats),
                   str(rounds)]
        for cv_file, output in zip(cv_files, outputs, strict=True):
            command += [str(cv_file), str(output)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        stdout = subprocess.run(command, check=True, capture_output=True, text=True,
                                env=env).stdout
        results: list[dict] = [{} for _ in cv_files]
        for line in stdout.splitlines():
            name, index, *rest = line.split(maxsplit=2 if line.startswith("error") else -1)
            results[int(index)][name] = " ".join(rest) if name == "error" else rest
        for result, output in zip(results, outputs, strict=True):
            if "error" in result:
                continue
            k = int(result.pop("n_out")[0])
            table = np.loadtxt(output, ndmin=2)
            result |= {key: [float(t) for t in result[key]]
                       for key in ("us_per_call", "us_forward_backward")}
            result |= {"values": table[:, :k],
                       "derivatives": table[:, k:].reshape(len(table), k, -1)}
    return results


def run(exe: Path, cv_file: Path, frames: np.ndarray, repeats: int = 2000,
        freeze: bool = False) -> dict:
    """Time ``cv_file`` on ``frames (F, n_in)`` nm, one thread, one round of ``repeats`` calls.

    Returns ``us_per_call`` and ``us_forward_backward`` (us, as in :func:`run_interleaved`),
    ``values (F, k)`` and ``derivatives (F, k, n_in)``; raises RuntimeError when the file fails.
    """
    result = run_interleaved(exe, [cv_file], frames, repeats, rounds=1, freeze=freeze)[0]
    if "error" in result:
        raise RuntimeError(f"{cv_file} failed in the LibTorch harness: {result['error']}")
    return result | {key: result[key][0] for key in ("us_per_call", "us_forward_backward")}
