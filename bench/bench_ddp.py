"""Data-parallel training throughput: 2 processes against 1, one thread each, in the same run.

The training is the likelihood step of ``nct-md train`` under ``torchrun``
(:class:`~nct_md.estimator.NCT` in a data-parallel run, where the kinetic term is off): the
heavy-atom model of the shipped alanine-dipeptide data (10 atoms: 30 coordinates, a flow over
their 24 internal degrees of freedom) at the original size (8 affine couplings, conditioners of
width 128 and depth 2, float32), :class:`~nct_md.train.trainer.Trainer` with AdamW, a global
batch of 200 frames of which each of the ``W`` processes takes every ``W``-th, gradients
averaged by ``DistributedDataParallel`` over gloo, and the global loss all-reduced every step
(as ``NCT.fit`` records it). One process trains without a process group, as ``nct-md train``
does.

Rounds alternate 1, 2, 1, 2, ... processes. Each round starts fresh worker processes (one thread
each: ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``), which load the data, build the
model and take ``warmup`` steps; only the next ``steps`` steps are timed, from the end of the
last warm-up step to the end of the last timed step on rank 0 (the ranks are in lockstep: every
step all-reduces). Process start-up, imports, data loading, the process group's rendezvous and
the warm-up are therefore excluded: the figures are steady-state training throughput, global
samples per second (``steps * 200 / seconds``). Per configuration: the median over rounds with
its minimum and maximum; the speed-up is the ratio of the medians (ideal: 2 on 2 free cores),
and the ratios of each round's pair are given too. Two processes in lockstep need two idle
cores: the load average before and after is recorded beside the figures.

Writes ``bench/out/ddp.json``. Usage: ``python -m bench.bench_ddp [--quick] [--rounds 5]
[--warmup 20] [--steps 300] [--out PATH]`` (``--quick``: a smoke run of about half a minute, whose
figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "ddp.json"
DATA = ROOT / "data" / "alanine-dipeptide-300K"
#: The original implementation's size: couplings, conditioner width and depth, batch.
COUPLINGS, HIDDEN, DEPTH, BATCH = 8, 128, 2, 200
WORLDS = (1, 2)


def free_port() -> int:
    """A free TCP port on the loopback interface (for the process group's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spread(values: list[float]) -> dict:
    """``{"median", "min", "max", "rounds"}`` of per-round figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": values}


def window_throughput(step_ends: list[float], warmup: int, batch: int) -> float:
    """Samples/s of the steps after the first ``warmup``: ``step_ends`` holds the end time (s)
    of every step, warm-up included; the window runs from the end of the last warm-up step."""
    if warmup < 1 or len(step_ends) <= warmup:
        raise ValueError(f"need at least one warm-up step and one timed step, got {warmup} of "
                         f"{len(step_ends)} steps")
    timed = len(step_ends) - warmup
    return timed * batch / (step_ends[-1] - step_ends[warmup - 1])


def worker(warmup: int, steps: int, stride: int) -> None:
    """One training process (rank and world size from the environment, as torchrun sets
    them): train ``warmup + steps`` steps and, on rank 0, print the result as one JSON line."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nct_md.estimator import NCT
    from nct_md.md.phase import load_phase_space
    from nct_md.train.split import mean_over_processes
    from nct_md.train.trainer import Trainer

    torch.set_num_threads(1)
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    if world > 1:
        dist.init_process_group("gloo")
    data = load_phase_space(sorted(DATA.glob("*.h5")), select="heavy", stride=stride)
    estimator = NCT(n_couplings=COUPLINGS, hidden=HIDDEN, depth=DEPTH, batch_size=BATCH)
    model = estimator._initial_model(data, np.arange(len(data)))  # the model NCT.fit trains
    net = DistributedDataParallel(model) if world > 1 else model
    p, q = data.p.float(), data.q.float()
    generator = torch.Generator().manual_seed(0)
    per_pass = len(data) // BATCH
    state = {"order": None}

    def loss(step: int):
        k = step % per_pass
        if k == 0:
            state["order"] = torch.randperm(len(data), generator=generator)
        idx = state["order"][k * BATCH:(k + 1) * BATCH][rank::world]
        nll = net(p[idx], q[idx]).mean()
        return nll, {"global_loss": mean_over_processes(nll, world)}

    step_ends: list[float] = []
    trainer = Trainer(model, loss, steps=warmup + steps, lr=1e-3, seed=0, generator=generator,
                      progress=False, after_step=lambda _: step_ends.append(time.perf_counter()))
    trainer.fit()
    if rank == 0:
        print(json.dumps({"samples_per_s": window_throughput(step_ends, warmup, BATCH),
                          "frames": len(data), "coordinates": int(p.shape[1]),
                          "flow_dims": model.architecture["n"],
                          "parameters": sum(x.numel() for x in model.parameters()),
                          "final_loss": trainer.history[-1]["global_loss"]}))
    if world > 1:
        dist.destroy_process_group()


def run_round(world: int, warmup: int, steps: int, stride: int, timeout: float) -> dict:
    """Start ``world`` worker processes, wait for them; rank 0's result."""
    port = free_port()
    children = []
    for rank in range(world):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)}
        children.append(subprocess.Popen(
            [sys.executable, "-m", "bench.bench_ddp", "--worker", "--warmup", str(warmup),
             "--steps", str(steps), "--stride", str(stride)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=timeout))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, err) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a {world}-process round failed:\n{err[-2000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 rounds of 3 + 5 steps on a quarter of the frames")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per configuration")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per round")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round")
    parser.add_argument("--stride", type=int, default=1, help="frame stride of the data")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per round")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.steps, args.stride = 2, 3, 5, 4
    if args.worker:
        worker(args.warmup, args.steps, args.stride)
        return None
    order = [world for _ in range(args.rounds) for world in WORLDS]
    load_before = list(os.getloadavg())
    results: dict[int, list[dict]] = {world: [] for world in WORLDS}
    for world in order:
        results[world].append(run_round(world, args.warmup, args.steps, args.stride,
                                         args.timeout))
        print(f"{world} process(es): {results[world][-1]['samples_per_s']:.0f} samples/s",
              flush=True)
    rates = {world: [r["samples_per_s"] for r in results[world]] for world in WORLDS}
    first = results[1][0]
    result = {
        "quick": args.quick,
        "model": {"coordinates": first["coordinates"], "flow_dims": first["flow_dims"],
                  "n_couplings": COUPLINGS, "hidden": HIDDEN, "depth": DEPTH,
                  "parameters": first["parameters"], "dtype": "float32"},
        "frames": first["frames"], "global_batch": BATCH, "backend": "gloo",
        "threads_per_process": 1, "cores": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "warmup_steps": args.warmup, "timed_steps": args.steps, "order": order,
        "processes": {str(world): {"samples_per_s": statistics.median(rates[world]),
                                   "samples_per_s_spread": spread(rates[world])}
                      for world in WORLDS},
        "speedup": statistics.median(rates[2]) / statistics.median(rates[1]),
        "speedup_by_round": spread([two / one for one, two in zip(rates[1], rates[2],
                                                                  strict=True)]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
