"""The matched reference CV: a Deep-TICA-shaped network on the exported CV's own superposition.

The exported NCT CV's cost per MD step is judged against what a Deep-TICA CV (Bonati et al.
2021) on the same atoms would cost in the same harness: the same :class:`Superposition` (same
atoms, masses and reference, float64, as in :func:`nct_md.export.cv_module`), then a
``3N -> 64 -> 64 -> k`` multilayer perceptron with tanh activations (none after the last
layer), float32, derivatives by plain autograd as PLUMED takes them. Its weights are random
with a fixed seed: the cost of a frame does not depend on their values.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from nct_md.export.cvmodule import Superposition
from nct_md.model import NCTModel

Tensor = torch.Tensor

#: hidden widths of the Deep-TICA network
HIDDEN = (64, 64)


class ReferenceCV(nn.Module):
    """Superposed frames through a tanh multilayer perceptron.

    Parameters
    ----------
    superposition : Superposition
        Runs in its own dtype (float64, as in the exported CV).
    widths : list of int
        Layer widths ``[3N, hidden..., k]``; tanh after every layer but the last.

    ``forward`` maps ``x (B, 3N)`` nm (``x1, y1, z1, x2, ...``) to ``(B, k)`` in the dtype of x;
    the network computes in the dtype of its weights.
    """

    def __init__(self, superposition: Superposition, widths: list[int]):
        super().__init__()
        self.superposition = superposition
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.Tanh()]
        self.network = nn.Sequential(*layers[:-1])

    def forward(self, x: Tensor) -> Tensor:
        aligned = self.superposition(x.to(self.superposition.centring.dtype))
        return self.network(aligned.to(self.network[0].weight.dtype)).to(x.dtype)


def reference_cv(model: NCTModel, n_cvs: int = 2, seed: int = 0) -> ReferenceCV:
    """The matched reference of ``model``'s exported CV: its atoms and superposition, then
    ``3N -> 64 -> 64 -> n_cvs`` (tanh), float32 weights drawn with ``seed``; in eval mode, no
    parameter requiring grad."""
    pre = model.preprocessing
    superposition = Superposition(pre.reference.detach().cpu().double(),
                                  pre.masses.detach().cpu().double())
    torch.manual_seed(seed)
    module = ReferenceCV(superposition, [3 * superposition.n_atoms, *HIDDEN, n_cvs])
    module.requires_grad_(False)
    return module.eval()


def save_reference_cv(model: NCTModel, path: str | os.PathLike, n_cvs: int = 2,
                      seed: int = 0) -> Path:
    """Script :func:`reference_cv` and write it to ``path`` (a TorchScript file PLUMED's
    PYTORCH_MODEL loads); returns the path."""
    path = Path(path)
    torch.jit.save(torch.jit.script(reference_cv(model, n_cvs, seed)), str(path))
    return path
