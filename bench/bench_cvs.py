"""Peak memory and throughput of ``nct-md cvs`` streaming a 10,000,000-frame trajectory.

Writes a synthetic 22-atom alanine-dipeptide HDF5 trajectory (:func:`bench.bench_stream.
write_trajectory`, chunk by chunk) into a temporary folder outside the repository, which is
removed afterwards, and trains a small heavy-atom model on the shipped data there (or takes
``--model``). ``nct-md cvs`` then runs in a fresh child process that reports its own wall time
and peak resident set size. Writes ``bench/out/cvs.json``: ``frames``, ``frames_per_s``,
``peak_rss_mb`` (MiB) and ``wall_s`` of the ``cvs`` process, ``write_s`` and ``file_mb`` of the
trajectory.

The record (10^7 frames) needs about 5 GB of free space in the temporary folder, checked before
anything is written.

Usage: ``python -m bench.bench_cvs [--frames 10000000] [--chunk 10000] [--model PATH]
[--tmp DIR] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_stream import write_trajectory

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "cvs.json"
FRAMES = 10_000_000
#: Upper bound of the synthetic file's size per frame (bytes): 22 atoms x 3 float32 positions
#: and velocities and a float32 time (zlib compression makes it ~15 % smaller).
BYTES_PER_FRAME = 22 * 3 * 4 * 2 + 4
#: Room left free beside the trajectory and the CV output (bytes).
MARGIN_BYTES = 1 << 30


def space_needed(frames: int) -> int:
    """Bytes the benchmark writes into its temporary folder for ``frames`` frames, with a
    margin: the trajectory, the float64 CVs (2 per frame) and :data:`MARGIN_BYTES`."""
    return frames * (BYTES_PER_FRAME + 2 * 8) + MARGIN_BYTES


def check_space(folder: Path, frames: int) -> None:
    """Raise OSError when ``folder``'s file system has less free space than :func:`space_needed`."""
    free, needed = shutil.disk_usage(folder).free, space_needed(frames)
    if free < needed:
        raise OSError(f"{folder} has {free / 1e9:.1f} GB free; {frames:,} frames need "
                      f"{needed / 1e9:.1f} GB: pass --tmp with a larger file system")


def time_cvs_command(arguments: list[str]) -> tuple[float, float]:
    """Run ``nct-md cvs ARGUMENTS`` in a fresh process: its wall time (s) and peak RSS (KiB)."""
    measured = (
        "import resource, sys, time\n"
        "from nct_md.cli import main\n"
        "start = time.perf_counter()\n"
        f"rc = main(['cvs', *{arguments!r}])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(time.perf_counter() - start, peak)\n"
        "sys.exit(rc)\n")
    child = subprocess.run([sys.executable, "-c", measured], check=True, capture_output=True,
                           text=True)
    wall, peak_kib = map(float, child.stdout.split()[-2:])
    return wall, peak_kib


def train_model(path: Path) -> None:
    """A small heavy-atom model of the shipped data (4 trajectories, 3 epochs) at ``path``."""
    data = sorted((ROOT / "data" / "alanine-dipeptide-300K").glob("*.h5"))
    subprocess.run([sys.executable, "-m", "nct_md", "train", *map(str, data[:4]),
                    "--epochs", "3", "--out", str(path)], check=True)


def measure(frames: int, chunk: int, model: Path | None, folder: Path) -> dict:
    """Write the trajectory and (unless given) the model into ``folder``, time ``nct-md cvs``."""
    check_space(folder, frames)
    traj = folder / f"ala2-{frames}-frames.h5"
    start = time.perf_counter()
    write_trajectory(traj, frames, chunk)
    write_s = time.perf_counter() - start
    if model is None:
        model = folder / "bench-model.pt"
        train_model(model)
    wall, peak_kib = time_cvs_command([str(model), str(traj), "--chunk", str(chunk),
                                       "--out", str(folder / "cvs.npy")])
    return {"frames": frames, "chunk": chunk, "wall_s": round(wall, 1),
            "frames_per_s": round(frames / wall), "peak_rss_mb": round(peak_kib / 1024.0, 1),
            "write_s": round(write_s, 1), "file_mb": round(traj.stat().st_size / 1e6, 1),
            "model": "trained: 4 shipped trajectories, 3 epochs" if model.parent == folder
            else model.name}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--chunk", type=int, default=10_000, help="frames per chunk")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: train a small one on the shipped data)")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    model = None if args.model is None else args.model.resolve()
    with tempfile.TemporaryDirectory(prefix="nct-bench-cvs-", dir=args.tmp) as folder:
        result = measure(args.frames, args.chunk, model, Path(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
