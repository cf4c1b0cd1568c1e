"""``nct-md train``: fit an NCT model to MD trajectories by maximum likelihood."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nct_md.errors import NCTInputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="learn slow CVs from trajectories (maximum likelihood)",
        description="Fit a neural canonical transformation (configuration-separable flow + "
                    "harmonic latent) to phase-space samples of the trajectories. Momenta come "
                    "from stored velocities or are drawn from Maxwell-Boltzmann each epoch. A "
                    "killed run resumes from OUT.ckpt when started again with the same command. "
                    "Under torchrun (e.g. torchrun --nproc_per_node 2 -m nct_md train ...) it "
                    "trains data-parallel; rank 0 writes the model.")
    parser.add_argument("traj", nargs="+", type=Path, help="trajectory files (any mdtraj format)")
    parser.add_argument("--top", type=Path, default=None,
                        help="topology file (optional when the trajectory format has one, e.g. h5)")
    parser.add_argument("--select", default="heavy",
                        help="atoms: heavy (default), backbone, all, or an mdtraj selection")
    parser.add_argument("--temperature", type=float, default=None,
                        help="data temperature in K (default: read from nct-md simulate files)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--couplings", type=int, default=8, help="coupling layers (default 8)")
    parser.add_argument("--hidden", type=int, default=64, help="conditioner width (default 64)")
    parser.add_argument("--depth", type=int, default=2,
                        help="hidden layers per conditioner (default 2); fewer couplings and "
                             "layers make an exported CV cheaper per MD step")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--patience", type=int, default=6,
                        help="stop after this many epochs without a better validation loss "
                             "(default 6)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--restarts", type=int, default=1,
                        help="fit this many times (seeds SEED, SEED+1, ...) and keep the fit "
                             "with the best validation likelihood (default 1)")
    parser.add_argument("--objective", choices=["phase-space", "configuration"],
                        default="phase-space",
                        help="likelihood of phase-space points (default, needs momenta) or of "
                             "configurations alone (momenta integrated out; faster)")
    parser.add_argument("--coupling", choices=["affine", "spline"], default="affine",
                        help="coupling layers: affine (default; exportable CVs) or rational-"
                             "quadratic splines (multimodal coordinates, for generators)")
    parser.add_argument("--internal-coordinates", action="store_true",
                        help="start the flow with bond lengths, angles and torsions from the "
                             "topology's bonds (for generators over every atom, with "
                             "--select all on unconstrained data)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.set_defaults(func=run)


def _start_distributed(device: str) -> int:
    """Join the torchrun process group when launched by torchrun; returns this rank."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank() if dist.is_initialized() else 0


def run(args: argparse.Namespace) -> None:
    from nct_md.estimator import NCT
    from nct_md.md.phase import load_phase_space

    if args.out.exists() and not args.overwrite:
        raise NCTInputError(f"{args.out} exists; choose another --out or pass --overwrite")
    if args.restarts < 1:
        raise NCTInputError(f"--restarts must be at least 1, got {args.restarts}")
    rank = _start_distributed(args.device)
    data = load_phase_space(args.traj, args.top, select=args.select,
                            temperature=args.temperature, stride=args.stride)
    if rank == 0:
        print(f"{len(data)} frames in {data.n_traj} trajectories, {data.n_atoms} atoms "
              f"({args.select}), {data.n_dof} internal degrees of freedom, "
              f"momenta from {data.metadata['momenta']}, T = {data.temperature} K")
    fits = []  # (validation NLL, estimator, checkpoint) per restart
    for seed in range(args.seed, args.seed + args.restarts):
        suffix = ".ckpt" if args.restarts == 1 else f".seed{seed}.ckpt"
        checkpoint = args.out.with_name(args.out.name + suffix)
        estimator = NCT(n_couplings=args.couplings, hidden=args.hidden, depth=args.depth,
                        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        patience=args.patience, seed=seed, device=args.device,
                        checkpoint=checkpoint, objective=args.objective.replace("-", "_"),
                        internal_coordinates=args.internal_coordinates,
                        coupling=args.coupling).fit(data)
        nll = estimator.fetch_model().metadata["training"]["validation_nll"]
        if rank == 0 and args.restarts > 1:
            print(f"seed {seed}: validation NLL {nll:.3f} nats/frame")
        fits.append((nll, estimator, checkpoint))
    _, estimator, _ = min(fits, key=lambda fit: fit[0])
    if rank != 0:
        return
    model = estimator.fetch_model()
    model.metadata["training"]["restarts"] = {
        "seeds": list(range(args.seed, args.seed + args.restarts)),
        "validation_nll": [float(nll) for nll, _, _ in fits]}
    # paths relative to the model file, so a model moved with its data still finds them
    where = args.out.resolve().parent
    model.metadata["training"]["files"] = [os.path.relpath(Path(p).resolve(), where)
                                           for p in args.traj]
    model.metadata["training"]["topology_file"] = (os.path.relpath(args.top.resolve(), where)
                                                   if args.top else None)
    model.save(args.out, overwrite=args.overwrite)
    for _, _, checkpoint in fits:
        checkpoint.unlink(missing_ok=True)
    w = model.frequencies
    print("slowest frequencies (1/ps): " + ", ".join(f"{x:.3g}" for x in w[:6]))
    print(f"validation NLL {model.metadata['training']['validation_nll']:.3f} nats/frame "
          f"(best epoch {model.metadata['training']['best_epoch']}); wrote {args.out}")
