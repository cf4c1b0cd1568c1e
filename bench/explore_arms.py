"""The comparison arms of ``bench.bench_explore``: the loop with TICA CVs, well-tempered
metadynamics on (Phi, Psi), and what every arm is measured by.

TICA CVs
--------
Each iteration fits deeptime TICA (2 components) on the heavy-atom positions of all frames so
far, superposed as an NCT model superposes them (:class:`nct_md.md.frame.EckartFrame` on the
reference of the plain start data, rigid-body directions projected out; float32 rounding as the
model's input), unweighted, time-lagged pairs within each trajectory. The CV that OpenMM biases
is a TorchScript :class:`LinearCV`: the exported CVs' :class:`~nct_md.export.cvmodule.
Superposition` followed by one affine map, the rigid-body projection and the TICA projection
folded together, so it equals the fitted TICA components on every frame. Gaussians are 0.3 of
each component's standard deviation on the data wide, the grid spans the data's range plus 6
standard deviations on each side. TICA drops the input directions whose variance is below
:data:`TICA_EPSILON_NM2` (deeptime's ``epsilon``: bond stretches and angle bends, amplitudes
under 0.01 nm), and the bias acts every MD step (:data:`TICA_BIAS_INTERVAL`). With deeptime's
default cutoff, whitening amplified those stiff directions (TICA-2 weighed ~40 per nm on
alanine dipeptide), its Gaussians were stiffer along them than the bonds themselves, and
runs blew up (a failed superposition): from the first picoseconds with the bias every 5
steps, after a few rounds with it every step. The cutoff keeps TICA-1's implied timescale
(within 2 % on the plain start) and cuts that stiffness about tenfold.

Ideal CVs
---------
Phi and Psi of the first residue with both (:func:`nct_md.cv.reference.phi_psi`) as two
periodic ``CustomTorsionForce`` bias variables.

Measures
--------
:func:`loop_measures`: over the frames of a loop (plain start plus its biased runs, each run's
final-bias weights scaled to its effective sample size and the plain start left out of the
weights, as ``nct-md explore`` does), the first
visit of the positive Phi core (cumulative biased ps) and ``dF = -ln(W(positive core) /
W(negative core))`` in kT. :func:`fresh_measures`: committed Phi transitions of one run and
their rate per ns.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import torch
from deeptime.decomposition import TICA
from openmm import app
from torch import nn

from nct_md.cv.reference import (
    committed_transitions,
    phi_core,
    phi_core_delta_f,
    phi_psi_pairs,
)
from nct_md.explore.runs import Run, biased_run, frame_table, population_weights
from nct_md.explore.states import backbone_basins
from nct_md.export.cvmodule import Superposition
from nct_md.export.openmm_force import bias_variables
from nct_md.md.frame import EckartFrame, remove_rigid_body
from nct_md.md.phase import load_phase_space

Tensor = torch.Tensor

#: TICA bias: Gaussian width and grid margin in units of each component's standard deviation
TICA_WIDTH_STD, TICA_MARGIN_STD = 0.3, 6.0
#: MD steps between evaluations of the TICA bias (module docstring)
TICA_BIAS_INTERVAL = 1
#: TICA drops input directions whose variance is below this, nm^2 (module docstring)
TICA_EPSILON_NM2 = 1e-4
#: The ideal-CV (Phi, Psi) metadynamics settings (kJ/mol, rad, ps), those of the issue
IDEAL = {"height": 1.2, "width_rad": 0.35, "bias_factor": 6.0, "pace_ps": 1.0}


class LinearCV(nn.Module):
    """Superposed positions through an affine map: ``(B, 3N)`` nm -> ``(B, k)``.

    Parameters
    ----------
    superposition : Superposition
        float64, on the reference the map was fitted in.
    weight : tensor ``(3N, k)``; offset : tensor ``(k,)``
        ``cvs = superposed @ weight + offset``.
    atom_indices : list of int
        The atoms' 0-based indices in the full topology (what the OpenMM forces act on).
    """

    def __init__(self, superposition: Superposition, weight: Tensor, offset: Tensor,
                 atom_indices: list[int]):
        super().__init__()
        self.superposition = superposition
        self.register_buffer("weight", weight)
        self.register_buffer("weight_t", weight.t().contiguous())
        self.register_buffer("offset", offset)
        self.n_atoms = int(superposition.n_atoms)
        self.n_cvs = int(weight.shape[1])
        self.atom_indices = [int(i) for i in atom_indices]

    def forward(self, x: Tensor) -> Tensor:
        return torch.mm(self.superposition(x), self.weight) + self.offset

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, k)`` and their Jacobian ``(B, k, 3N)`` (per nm)."""
        aligned, cache = self.superposition.run(x)
        grad = self.weight_t.unsqueeze(0).expand(x.shape[0], self.n_cvs, 3 * self.n_atoms)
        return torch.mm(aligned, self.weight) + self.offset, self.superposition.pullback(
            cache, grad)


class TICAFrame:
    """Heavy atoms of the plain start data, superposed on its reference (the NCT model's)."""

    def __init__(self, start: Path, temperature: float):
        data = load_phase_space([start], select="heavy", velocities=False,
                                temperature=temperature)
        self.atom_indices = [int(i) for i in data.atom_indices]
        self.frame = EckartFrame(data.reference, data.masses)

    def positions(self, traj: md.Trajectory) -> np.ndarray:
        """``(n, 3N)`` nm, float32-rounded like the model's input, as float64."""
        q = self.frame.positions(traj.xyz[:, self.atom_indices])[0]
        return q.astype(np.float32).astype(np.float64)

    def fit(self, trajs: list[md.Trajectory], lag: int) -> tuple[LinearCV, np.ndarray]:
        """TICA (2 components, ``lag`` frames) on ``trajs``: the CV module and the components
        ``(n_frames, 2)`` of all frames."""
        q = [self.positions(t) for t in trajs]
        tica = TICA(lagtime=lag, dim=2, epsilon=TICA_EPSILON_NM2).fit(q).fetch_model()
        n = q[0].shape[1]
        offset = tica.transform(np.zeros((1, n)))[0]
        rigid_free = remove_rigid_body(np.eye(n), self.frame.reference, self.frame.masses,
                                       "q", self.frame.rigid)
        weight = tica.transform(rigid_free) - offset
        superposition = Superposition(torch.from_numpy(self.frame.reference),
                                      torch.from_numpy(self.frame.masses))
        module = LinearCV(superposition, torch.from_numpy(weight), torch.from_numpy(offset),
                          self.atom_indices)
        return module.eval(), np.concatenate([tica.transform(x) for x in q])


def tica_variables(module: LinearCV, components: np.ndarray) -> tuple[list, dict]:
    """Bias variables of a TICA module and their grid (module docstring) as a dict."""
    std, lows, highs = components.std(0), components.min(0), components.max(0)
    grid = {"widths": (TICA_WIDTH_STD * std).tolist(),
            "min": (lows - TICA_MARGIN_STD * std).tolist(),
            "max": (highs + TICA_MARGIN_STD * std).tolist()}
    return bias_variables(torch.jit.script(module), grid["min"], grid["max"],
                          grid["widths"]), grid


def torsion_variables(pdb: Path) -> list[app.BiasVariable]:
    """Periodic bias variables on Phi and Psi (:data:`IDEAL` width) of the PDB's first residue
    with both."""
    topology = md.load_topology(str(pdb))
    phi, psi = phi_psi_pairs(topology)[0]
    variables = []
    for atoms in (phi, psi):
        force = openmm.CustomTorsionForce("theta")
        force.addTorsion(*(int(i) for i in atoms), [])
        variables.append(app.BiasVariable(force, -np.pi, np.pi, IDEAL["width_rad"], True))
    return variables


def biased_runs(folders: list[Path], offset_ps: float = 0.0) -> list[Run]:
    """Runs of consecutive metadynamics folders (iterations 1, 2, ...), cumulative biased
    time from ``offset_ps``."""
    runs = []
    for iteration, folder in enumerate(folders, start=1):
        runs.append(biased_run(folder, iteration, offset_ps))
        offset_ps = float(runs[-1].biased_ps[-1])
    return runs


def loop_measures(runs: list[Run]) -> dict:
    """First visit of the positive Phi core (cumulative biased ps) and ``dF`` (kT) over the
    frames of ``runs`` (module docstring)."""
    trajs = [run.load() for run in runs]
    residue = backbone_basins(trajs, frame_table(runs)[1], population_weights(runs))[0]
    return {"first_positive_core_biased_ps": residue["phi_positive_core_first_visit_biased_ps"],
            "delta_f_kt": residue["delta_f_phi_kt"],
            "positive_core_weight_fraction": residue["phi_positive_core_weight_fraction"]}


def phi_of(folder: Path) -> np.ndarray:
    """Phi (rad) per frame of a metadynamics folder's ``colvar.csv``."""
    with (Path(folder) / "colvar.csv").open() as handle:
        column = handle.readline().strip().split(",").index("phi_rad")
        return np.loadtxt(handle, delimiter=",", ndmin=2)[:, column]


def fresh_measures(phi: np.ndarray, ns: float, summary: dict | None = None) -> dict:
    """Committed Phi transitions of one run of ``ns`` ns and their rate per ns."""
    n = committed_transitions(phi)
    out = {"ns": ns, "committed_transitions": n, "rate_per_ns": n / ns,
           "positive_core_fraction": float(np.mean(phi_core(phi) == 1))}
    if summary is not None:
        out |= {key: summary[key] for key in ("ns_per_day", "wall_s", "mean_temperature_k")
                if key in summary}  # plain MD (nct_md.md.simulate) has no mean temperature
    return out


def delta_f(phi: np.ndarray, log_w: np.ndarray) -> float | None:
    """:func:`~nct_md.cv.reference.phi_core_delta_f` (kT) of frames with log-weights."""
    return phi_core_delta_f(phi, np.exp(log_w - np.max(log_w)))


def block_delta_f(phi: np.ndarray, log_w: np.ndarray, n_blocks: int,
                  skip_fraction: float) -> dict:
    """``dF`` (kT) of a long run from all frames after ``skip_fraction`` and from
    ``n_blocks`` consecutive blocks of them: mean and standard error over the blocks that
    visit both cores."""
    start = int(len(phi) * skip_fraction)
    blocks = [delta_f(p, w) for p, w in zip(np.array_split(phi[start:], n_blocks),
                                            np.array_split(log_w[start:], n_blocks),
                                            strict=True)]
    values = np.array([b for b in blocks if b is not None])
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return {"delta_f_kt": delta_f(phi[start:], log_w[start:]),
            "block_mean_kt": float(values.mean()) if len(values) else None,
            "block_sem_kt": sem, "blocks_kt": blocks, "skip_fraction": skip_fraction}


def fes_delta_f(free_energy: np.ndarray, kt_kjmol: float) -> float | None:
    """``dF`` (kT) between the Phi cores from a (Psi, Phi) free-energy grid (kJ/mol, OpenMM's
    layout, periodic: the last point of each axis repeats the first) spanning -pi..pi."""
    grid = free_energy[:-1, :-1]
    phi = np.linspace(-np.pi, np.pi, free_energy.shape[1])[:-1]
    return phi_core_delta_f(phi, np.exp(-(grid - grid.min()) / kt_kjmol).sum(axis=0))
