"""Benchmark: the harmonic chain at n = 16 and n = 32 (the paper's size).

Writes ``bench/out/harmonic_chain.json``: per n the contract JSON, wall time, and the wall time
at which the learned frequencies first came within 1 % of the analytic ones (checked every 250
steps on the running model). Run with ``python -m bench.bench_harmonic_chain``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from nct_md.systems import harmonic_chain

OUT = Path(__file__).resolve().parent / "out" / "harmonic_chain.json"


def run(n: int) -> dict:
    """Fit the chain of size ``n`` and time it, recording when 1 % accuracy is first reached."""
    analytic = harmonic_chain.analytic_frequencies(n)
    reached: dict[str, float] = {}

    def watch(step: int, model) -> None:
        if step % 250 == 0 and "seconds_to_1pct" not in reached:
            w = model.latent.sorted_frequencies().numpy()
            if np.max(np.abs(w / analytic - 1)) <= 0.01:
                reached["seconds_to_1pct"] = time.perf_counter() - start
                reached["steps_to_1pct"] = step

    start = time.perf_counter()
    result = harmonic_chain.fit_harmonic_chain(n, seed=0, steps=harmonic_chain.default_steps(n),
                                               progress=False, on_step=watch)
    return {**result.to_json(), "steps": harmonic_chain.default_steps(n),
            "seconds": time.perf_counter() - start, **reached}


def main() -> None:
    torch.set_num_threads(1)
    results = {str(n): run(n) for n in (16, 32)}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    for n, r in results.items():
        print(f"n = {n}: max rel. error {r['max_relative_error']:.2e}, free energy "
              f"{r['free_energy']:.4f} vs exact {r['free_energy_exact']:.4f} kT, cosines "
              f"{min(r['slow_mode_cosines']):.6f}, {r['seconds']:.0f} s "
              f"(1 % after {r.get('seconds_to_1pct', float('nan')):.0f} s)")


if __name__ == "__main__":
    main()
