"""The headline claim, held by the shipped model on a trajectory it never saw.

``data/alanine-dipeptide-heavy.pt`` was trained on four of the six 300 K trajectories
(:func:`nct_md.demo.split_trajectories`). On the held-out ``phi-pos-c7ax-2.h5``, which visits
all five Ramachandran basins (C7ax and alphaL first, then the Phi < 0 basins), its two slowest
CVs must carry Psi (mutual information >= 1.5 nats for CV1 or CV2) and tell the basins apart
(kNN balanced accuracy >= 0.9, the classifier fitted on the training trajectories' CVs).
Measured: MI(CV1, Psi) = 1.93 nats, basin accuracy 0.948.
"""

import mdtraj as md
import numpy as np
from conftest import DATA

from nct_md.cv import reference, scores
from nct_md.demo import split_trajectories
from nct_md.model import NCTModel


def _cvs_and_basins(model: NCTModel, paths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CV1, CV2 ``(n, 2)``, basin codes ``(n,)`` and Psi ``(n,)`` (radians) of ``paths``."""
    trajs = [md.load(str(p)) for p in paths]
    cvs = np.concatenate([model.transform(t, 2) for t in trajs])
    phi, psi = map(np.concatenate, zip(*map(reference.phi_psi, trajs), strict=True))
    return cvs, reference.ramachandran_basin(phi, psi), psi


def test_shipped_model_separates_basins_and_carries_psi_on_a_held_out_trajectory():
    model = NCTModel.load(DATA / "alanine-dipeptide-heavy.pt")
    train, held = split_trajectories(DATA)
    fit_x, fit_y, _ = _cvs_and_basins(model, train)
    x, y, psi = _cvs_and_basins(model, [p for p in held if p.name == "phi-pos-c7ax-2.h5"])
    assert set(np.unique(y)) == set(range(len(reference.BASINS)))  # every basin is scored
    accuracy = scores.knn_balanced_accuracy(fit_x, fit_y, x, y)
    mi_psi = max(scores.mutual_information(x[:, k], psi, periodic_y=True) for k in range(2))
    print(f"basin accuracy {accuracy:.3f}, MI(CV, Psi) {mi_psi:.2f} nats")
    assert accuracy >= 0.9
    assert mi_psi >= 1.5
