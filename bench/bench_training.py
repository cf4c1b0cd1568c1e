"""Training and CV-extraction throughput of the original-size alanine model vs a matched MLP.

The original NCT implementation's alanine-dipeptide model: 30 position dims, 8 affine couplings
whose scale and shift networks are 30 -> 128 -> 128 -> 30 (~390k parameters), momenta by a
vector-Jacobian product, float32, 1 thread: ~105 ms per maximum-likelihood step at batch 200
(~1,900 samples/s) and ~25,000 frames/s for the positions-only forward at batch 10,000
(measured on this machine, figures from the project's issue). Ours is built at the same size
(8 couplings on 30 coordinates, conditioner width 128, depth 2), and each figure is measured
next to a plain MLP with the same layers (the practical limit on this CPU), in one run; the
"vs MLP" ratios compare FLOP rates (torch's FLOP counter), i.e. against an MLP of equal FLOPs.
The positions-only forward is also timed compiled by ``torch.compile`` (with its compile time);
the training step cannot be compiled (it needs double backward).
Writes ``bench/out/training.json``. Usage: ``python -m bench.bench_training``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from deeptime.decomposition import TICA
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nct_md.flows import point_flow
from nct_md.latent import HarmonicLatent
from nct_md.md import frame
from nct_md.train import negative_log_likelihood

OUT = Path(__file__).resolve().parent / "out" / "training.json"
ORIGINAL = {"train_samples_per_s": 1900.0, "forward_frames_per_s": 25000.0}
N, BATCH, FORWARD_BATCH = 30, 200, 10_000


def timed(fn, repeats: int, warmup: int = 5) -> float:
    """Median seconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def flops(fn) -> int:
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


def main() -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    flow = point_flow(N, n_couplings=8, hidden=128, depth=2)
    for layer in flow.layers:  # move off the identity so the timing sees real arithmetic
        for param in layer.parameters():
            param.data.normal_(0, 0.05)
    latent = HarmonicLatent(N)
    params = [*flow.parameters(), *latent.parameters()]
    optimiser = torch.optim.AdamW(params, lr=1e-4)
    p, q = torch.randn(2, BATCH, N)

    def train_step():
        optimiser.zero_grad()
        negative_log_likelihood(flow, latent, p, q).backward()
        optimiser.step()

    mlp = matched_mlp(flow)
    mlp_opt = torch.optim.AdamW(mlp.parameters(), lr=1e-4)

    def mlp_step():
        mlp_opt.zero_grad()
        mlp(q).sum().backward()
        mlp_opt.step()

    step_s, mlp_step_s = timed(train_step, 30), timed(mlp_step, 30)
    step_flops, mlp_step_flops = flops(train_step), flops(mlp_step)

    # CV extraction with alignment: 10 heavy atoms of alanine dipeptide (30 coordinates)
    rng = np.random.default_rng(0)
    reference = rng.normal(scale=0.15, size=(10, 3))
    masses = rng.uniform(12, 16, size=10)
    xyz = reference + 0.01 * rng.normal(size=(FORWARD_BATCH, 10, 3))
    xq = torch.randn(FORWARD_BATCH, N)

    @torch.no_grad()
    def extract():
        aligned, _ = frame.superpose(xyz, reference, masses)
        x = torch.as_tensor(aligned.reshape(FORWARD_BATCH, -1), dtype=torch.float32)
        flow.transform_positions(x)

    @torch.no_grad()
    def mlp_forward():
        mlp(xq)

    tica = TICA(lagtime=10, dim=2).fit(rng.normal(size=(20_000, N))).fetch_model()

    def tica_transform():
        aligned, _ = frame.superpose(xyz, reference, masses)
        tica.transform(aligned.reshape(FORWARD_BATCH, -1))

    compile_start = time.perf_counter()
    compiled_positions = torch.compile(flow.transform_positions, dynamic=False)
    with torch.no_grad():
        compiled_positions(xq)
    compile_s = time.perf_counter() - compile_start

    @torch.no_grad()
    def eager_positions():
        flow.transform_positions(xq)

    @torch.no_grad()
    def compiled_forward():
        compiled_positions(xq)

    eager_fwd_s, compiled_fwd_s = timed(eager_positions, 10, 2), timed(compiled_forward, 10, 2)
    extract_s, mlp_fwd_s = timed(extract, 10, 2), timed(mlp_forward, 10, 2)
    tica_s = timed(tica_transform, 10, 2)
    extract_flops, mlp_fwd_flops = flops(extract), flops(mlp_forward)
    result = {
        "parameters_flow": sum(x.numel() for x in flow.parameters()),
        "train_samples_per_s": BATCH / step_s,
        "train_ms_per_step": 1000 * step_s,
        "mlp_fwd_bwd_samples_per_s": BATCH / mlp_step_s,
        "train_gflop_per_s": step_flops / step_s / 1e9,
        "mlp_fwd_bwd_gflop_per_s": mlp_step_flops / mlp_step_s / 1e9,
        "train_vs_mlp": (step_flops / step_s) / (mlp_step_flops / mlp_step_s),
        "train_vs_original": (BATCH / step_s) / ORIGINAL["train_samples_per_s"],
        "cv_frames_per_s_with_alignment": FORWARD_BATCH / extract_s,
        "mlp_forward_frames_per_s": FORWARD_BATCH / mlp_fwd_s,
        "cv_gflop_per_s": extract_flops / extract_s / 1e9,
        "mlp_forward_gflop_per_s": mlp_fwd_flops / mlp_fwd_s / 1e9,
        "cv_vs_mlp": (extract_flops / extract_s) / (mlp_fwd_flops / mlp_fwd_s),
        "cv_vs_original": (FORWARD_BATCH / extract_s) / ORIGINAL["forward_frames_per_s"],
        "tica_frames_per_s_with_alignment": FORWARD_BATCH / tica_s,
        "torch_compile": {
            "forward_frames_per_s_eager": FORWARD_BATCH / eager_fwd_s,
            "forward_frames_per_s_compiled": FORWARD_BATCH / compiled_fwd_s,
            "forward_speedup": eager_fwd_s / compiled_fwd_s,
            "compile_seconds": compile_s,
            "training": "not supported: the momentum lift's vector-Jacobian product makes the "
                        "likelihood need double backward, which torch.compile (aot_autograd) "
                        "does not support",
        },
        "original": ORIGINAL,
        "threads": 1,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
