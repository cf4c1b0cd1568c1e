"""Training and CV-extraction throughput of the original-size alanine model against the original
algorithm and a FLOP-matched MLP, all timed in this run.

Ours is built at the original size (8 affine couplings on the 30 heavy-atom coordinates,
conditioner width 128, depth 2; ``nct_md``'s likelihood). The reference is the original NCT
re-implemented in :mod:`bench.original_nct` (RealNVP, Softplus networks 30 -> 128 -> 128 -> 30,
momenta lifted by autograd's vector-Jacobian product, Adam), same batch (200), float32, 1 thread.
No figure of another run is used: each side is timed in alternating rounds in this process
(the order reversed every other round, so drift of the machine's speed falls on every side
alike); each figure is the median over rounds, its spread (min, max, every round) under
``spread``, and ratios divide medians (their per-round paired ratios are under ``spread`` too).

CV extraction times the whole path from frames: mass-weighted superposition of 10,000 frames
of 10 heavy atoms on a reference (``nct_md.md.frame.superpose``), then the positions-only
forward. The original's figure (``original.forward_frames_per_s``) includes the same
superposition, so the ratio compares like with like; its forward alone is
``original.forward_frames_per_s_without_alignment`` (the original's notebook extracted CVs with
the full phase-space forward, momentum lift included: the positions-only forward is the more
generous reference).

Each training step and CV transform is also measured next to a plain MLP with the same layers
(the practical limit on this CPU); the "vs MLP" ratios compare FLOP rates (torch's FLOP counter),
i.e. against an MLP of equal FLOPs. The positions-only forward is also timed compiled by
``torch.compile`` (with its compile time); the training step cannot be compiled (it needs double
backward).

Writes ``bench/out/training.json``. Usage: ``python -m bench.bench_training`` (the record) or
``python -m bench.bench_training --quick`` (a smoke run in seconds: few rounds, small batches,
no compile; prints its JSON and writes nothing unless ``--out`` is given; its figures are not
results).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from deeptime.decomposition import TICA
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench import original_nct
from nct_md.flows import point_flow
from nct_md.latent import HarmonicLatent
from nct_md.md import frame
from nct_md.train import negative_log_likelihood

OUT = Path(__file__).resolve().parent / "out" / "training.json"
N, N_ATOMS = 30, 10


@dataclass(frozen=True)
class Settings:
    """How much is timed: ``rounds`` alternating rounds, each timing every function for
    ``train_calls`` training steps (batch ``batch``) or ``forward_calls`` CV transforms (batch
    ``forward_batch`` frames), after ``warmup`` untimed calls; ``compile`` adds torch.compile."""

    rounds: int
    batch: int
    forward_batch: int
    train_calls: int
    forward_calls: int
    warmup: int
    compile: bool


FULL = Settings(rounds=7, batch=200, forward_batch=10_000, train_calls=10, forward_calls=3,
                warmup=3, compile=True)
QUICK = Settings(rounds=2, batch=20, forward_batch=200, train_calls=2, forward_calls=1,
                 warmup=1, compile=False)


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, calls: int, warmup: int
                ) -> dict[str, list[float]]:
    """Seconds per call of each function, one figure per round (the mean of ``calls`` calls).

    Every function is called ``warmup`` times first; the order of the functions is reversed
    every other round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(calls):
                fns[name]()
            seconds[name].append((time.perf_counter() - start) / calls)
    return seconds


def spread(values: list[float]) -> dict:
    """Median, min, max and every round of per-round figures."""
    return {"median": float(np.median(values)), "min": float(np.min(values)),
            "max": float(np.max(values)), "rounds": [float(v) for v in values]}


def flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (torch's FLOP counter, backward too)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matched_mlp(flow: nn.Module) -> nn.Module:
    """The flow's conditioner networks as one plain stack applied to the same inputs."""
    nets = [layer.conditioner for layer in flow.layers if hasattr(layer, "conditioner")]

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.nets = nn.ModuleList([type(net)(*[m for m in net]) for net in nets])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return sum(net(x[:, : net[0].in_features]).sum(1) for net in self.nets)

    return Stack()


def main(settings: Settings = FULL) -> dict:
    """Time everything in ``settings``; the result (figures per second, medians over rounds)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch, forward_batch = settings.batch, settings.forward_batch
    flow = point_flow(N, n_couplings=8, hidden=128, depth=2)
    for layer in flow.layers:  # move off the identity so the timing sees real arithmetic
        for param in layer.parameters():
            param.data.normal_(0, 0.05)
    latent = HarmonicLatent(N)
    params = [*flow.parameters(), *latent.parameters()]
    optimiser = torch.optim.AdamW(params, lr=1e-4)
    p, q = torch.randn(2, batch, N)
    original = original_nct.OriginalNCT(N, generator=torch.Generator().manual_seed(0))
    original_adam = original_nct.optimiser(original)

    def train_step():
        optimiser.zero_grad()
        negative_log_likelihood(flow, latent, p, q).backward()
        optimiser.step()

    def original_step():
        original_nct.training_step(original, original_adam, p, q)

    mlp = matched_mlp(flow)
    mlp_opt = torch.optim.AdamW(mlp.parameters(), lr=1e-4)

    def mlp_step():
        mlp_opt.zero_grad()
        mlp(q).sum().backward()
        mlp_opt.step()

    train = interleaved({"ours": train_step, "original": original_step, "mlp": mlp_step},
                        settings.rounds, settings.train_calls, settings.warmup)
    step_flops, original_step_flops, mlp_step_flops = (flops(train_step), flops(original_step),
                                                       flops(mlp_step))

    # CV extraction with alignment: 10 heavy atoms of alanine dipeptide (30 coordinates)
    rng = np.random.default_rng(0)
    reference = rng.normal(scale=0.15, size=(N_ATOMS, 3))
    masses = rng.uniform(12, 16, size=N_ATOMS)
    xyz = reference + 0.01 * rng.normal(size=(forward_batch, N_ATOMS, 3))
    xq = torch.randn(forward_batch, N)

    def aligned_positions() -> torch.Tensor:
        aligned, _ = frame.superpose(xyz, reference, masses)
        return torch.as_tensor(aligned.reshape(forward_batch, -1), dtype=torch.float32)

    @torch.no_grad()
    def extract():
        flow.transform_positions(aligned_positions())

    @torch.no_grad()
    def original_extract():
        original.positions(aligned_positions())

    @torch.no_grad()
    def original_forward():
        original.positions(xq)

    @torch.no_grad()
    def eager_positions():
        flow.transform_positions(xq)

    @torch.no_grad()
    def mlp_forward():
        mlp(xq)

    tica = TICA(lagtime=10, dim=2).fit(rng.normal(size=(2 * forward_batch, N))).fetch_model()

    def tica_transform():
        aligned, _ = frame.superpose(xyz, reference, masses)
        tica.transform(aligned.reshape(forward_batch, -1))

    forward_fns = {"ours": extract, "original": original_extract,
                   "original_no_alignment": original_forward, "ours_no_alignment": eager_positions,
                   "mlp": mlp_forward, "tica": tica_transform}
    compile_s = None
    if settings.compile:
        compile_start = time.perf_counter()
        compiled_positions = torch.compile(flow.transform_positions, dynamic=False)
        with torch.no_grad():
            compiled_positions(xq)
        compile_s = time.perf_counter() - compile_start

        @torch.no_grad()
        def compiled_forward():
            compiled_positions(xq)

        forward_fns["compiled"] = compiled_forward
    forward = interleaved(forward_fns, settings.rounds, settings.forward_calls, settings.warmup)
    extract_flops, original_extract_flops, mlp_fwd_flops = (flops(extract),
                                                            flops(original_extract),
                                                            flops(mlp_forward))

    train_rates = {name: [batch / s for s in times] for name, times in train.items()}
    cv_rates = {name: [forward_batch / s for s in times] for name, times in forward.items()}
    step_s = {name: float(np.median(times)) for name, times in train.items()}
    cv_s = {name: float(np.median(times)) for name, times in forward.items()}

    def rate(values: list[float]) -> float:
        return float(np.median(values))

    def paired(ours: list[float], reference: list[float]) -> list[float]:
        return [a / b for a, b in zip(ours, reference, strict=True)]

    result = {
        "parameters_flow": sum(x.numel() for x in flow.parameters()),
        "train_samples_per_s": rate(train_rates["ours"]),
        "train_ms_per_step": 1000 * step_s["ours"],
        "mlp_fwd_bwd_samples_per_s": rate(train_rates["mlp"]),
        "train_gflop_per_s": step_flops / step_s["ours"] / 1e9,
        "mlp_fwd_bwd_gflop_per_s": mlp_step_flops / step_s["mlp"] / 1e9,
        "train_vs_mlp": (step_flops / step_s["ours"]) / (mlp_step_flops / step_s["mlp"]),
        "train_vs_original": rate(train_rates["ours"]) / rate(train_rates["original"]),
        "cv_frames_per_s_with_alignment": rate(cv_rates["ours"]),
        "mlp_forward_frames_per_s": rate(cv_rates["mlp"]),
        "cv_gflop_per_s": extract_flops / cv_s["ours"] / 1e9,
        "mlp_forward_gflop_per_s": mlp_fwd_flops / cv_s["mlp"] / 1e9,
        "cv_vs_mlp": (extract_flops / cv_s["ours"]) / (mlp_fwd_flops / cv_s["mlp"]),
        "cv_vs_original": rate(cv_rates["ours"]) / rate(cv_rates["original"]),
        "tica_frames_per_s_with_alignment": rate(cv_rates["tica"]),
        "torch_compile": {
            "forward_frames_per_s_eager": rate(cv_rates["ours_no_alignment"]),
            "training": "not supported: the momentum lift's vector-Jacobian product makes the "
                        "likelihood need double backward, which torch.compile (aot_autograd) "
                        "does not support",
        },
        "original": {
            "implementation": "bench/original_nct.py: RealNVP, 8 couplings, Softplus networks "
                              "30 -> 128 -> 128 -> 30, scale * tanh, momenta by autograd "
                              "vector-Jacobian product (create_graph), Adam, float32",
            "parameters": sum(x.numel() for x in original.parameters()),
            "train_samples_per_s": rate(train_rates["original"]),
            "train_ms_per_step": 1000 * step_s["original"],
            "train_gflop_per_s": original_step_flops / step_s["original"] / 1e9,
            "forward_frames_per_s": rate(cv_rates["original"]),
            "forward_includes_alignment": True,
            "forward_frames_per_s_without_alignment": rate(cv_rates["original_no_alignment"]),
            "forward_gflop_per_s": original_extract_flops / cv_s["original"] / 1e9,
        },
        "spread": {
            "train_samples_per_s": spread(train_rates["ours"]),
            "original.train_samples_per_s": spread(train_rates["original"]),
            "mlp_fwd_bwd_samples_per_s": spread(train_rates["mlp"]),
            "train_vs_original": spread(paired(train_rates["ours"], train_rates["original"])),
            "cv_frames_per_s_with_alignment": spread(cv_rates["ours"]),
            "original.forward_frames_per_s": spread(cv_rates["original"]),
            "original.forward_frames_per_s_without_alignment":
                spread(cv_rates["original_no_alignment"]),
            "cv_vs_original": spread(paired(cv_rates["ours"], cv_rates["original"])),
            "mlp_forward_frames_per_s": spread(cv_rates["mlp"]),
            "tica_frames_per_s_with_alignment": spread(cv_rates["tica"]),
            "torch_compile.forward_frames_per_s_eager": spread(cv_rates["ours_no_alignment"]),
        },
        "timing": asdict(settings) | {"order": "alternating rounds, reversed every other round"},
        "threads": 1,
        "quick": settings == QUICK,
    }
    if settings.compile:
        result["torch_compile"] |= {
            "forward_frames_per_s_compiled": rate(cv_rates["compiled"]),
            "forward_speedup": cv_s["ours_no_alignment"] / cv_s["compiled"],
            "compile_seconds": compile_s,
        }
        result["spread"]["torch_compile.forward_frames_per_s_compiled"] = \
            spread(cv_rates["compiled"])
    return result


def cli(argv: list[str] | None = None) -> dict:
    """``python -m bench.bench_training [--quick] [--out PATH]``; the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds (few rounds, small batches, no compile); "
                             "writes nothing unless --out is given")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output JSON (default {OUT.relative_to(OUT.parents[2])}; none with "
                             "--quick)")
    args = parser.parse_args(argv)
    result = main(QUICK if args.quick else FULL)
    out = args.out if args.out is not None or args.quick else OUT
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(exist_ok=True)
        out.write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    cli()
