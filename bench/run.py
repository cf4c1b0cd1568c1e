"""Run every benchmark in turn (``make bench``); each writes its JSON under ``bench/out/``.

Benchmarks run one at a time, each in its own process, so their timings do not interfere.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("bench.bench_harmonic_chain", "bench.bench_stream", "bench.bench_cvs",
              "bench.bench_training", "bench.bench_generate")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", name]).returncode != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
