"""Build the self-contained CV module from a fitted NCTModel; save and load it as TorchScript.

Public API
----------
cv_module(model, n_cvs=2, dtype=torch.float32) -> CVModule
    The whole positions -> CVs pipeline as an ``nn.Module`` (scriptable, no nct_md inside).
save_torchscript(model, path, n_cvs=2, dtype=torch.float32, overwrite=False) -> dict
    Script it and write one ``.pt`` file (PLUMED's PYTORCH_MODEL convention); returns the
    metadata stored beside it in the file (``nct_md.json``).
load_torchscript(path) -> (torch.jit.ScriptModule, dict)
    Read it back with ``torch.jit.load`` and its metadata.

The input is the positions of the model's atoms, in the model's atom order, in nm, flattened
atom-major: ``(B, 3N)`` = ``x1, y1, z1, x2, y2, z2, ...``; the output is ``(B, n_cvs)``, CV1
(slowest) first, in the model's units (ps: mass-weighted nm divided by sqrt(kJ/mol)).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from torch import nn

from nct_md import __version__
from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError
from nct_md.export.cvmodule import (
    BIAS_UNIT,
    Affine,
    Coupling,
    CVModule,
    CVNetwork,
    Superposition,
)
from nct_md.flows import (
    AffineCoupling,
    LinearPointTransform,
    MomentumKick,
    SymplecticLayer,
    SymplecticScaling,
)
from nct_md.model import NCTModel

#: Name of the JSON metadata stored inside the TorchScript file.
METADATA_FILE = "nct_md.json"
#: Flow layers whose position map is linear: exported as an :class:`Affine` stage.
LINEAR_LAYERS = (LinearPointTransform, SymplecticScaling, MomentumKick)
DTYPES = {"float32": torch.float32, "float64": torch.float64}

Tensor = torch.Tensor


def _linear_matrix(layer: SymplecticLayer, n: int) -> Tensor:
    """``W (n, n)`` with ``layer.transform_positions(q) = q @ W`` (float64)."""
    with torch.no_grad():
        return copy.deepcopy(layer).double().transform_positions(torch.eye(n, dtype=torch.float64))


def _augmented(weight: Tensor, bias: Tensor, unit: float = 1.0) -> Tensor:
    """``[[weight], [bias / unit]]`` ``(n_in + 1, n_out)``: the map of ``[x, unit]`` (float64)."""
    return torch.cat([weight, bias[None] / unit]).double()


def _with_unit(weight: Tensor, unit: float) -> Tensor:
    """``weight (n_in + 1, n_out)`` and a last column that is ``unit`` for the input's own
    constant unit (last row) and 0 elsewhere: the constant passes on to the output."""
    column = torch.zeros(weight.shape[0], 1, dtype=torch.float64)
    column[-1] = unit
    return torch.cat([weight, column], dim=1)


class _Conditioner:
    """An exported :class:`AffineCoupling`'s conditioner, in float64, biases folded.

    ``first (n_a + 1, H + 1)``: ``[q_a, 1]`` -> ``[p, BIAS_UNIT]``, the first hidden layer's
    pre-activation; ``hidden``: the other hidden layers ``(H + 1, H + 1)``; ``head
    (H + 1, 2 (n + 1))``: ``[h, BIAS_UNIT]`` -> ``[r, t]`` over the split-ordered coordinates and
    the constant (zero for ``q_a`` and the constant); ``split (n, n)``: ``q @ split = [q_a, q_b]``.
    The conditioner must be ``[Linear, SiLU] * depth + [Linear]`` with depth >= 1 (as built by
    :func:`nct_md.flows.coupling.mlp`).
    """

    def __init__(self, layer: AffineCoupling):
        net = [copy.deepcopy(m).double() for m in layer.conditioner]
        hidden, last = net[:-1:2], net[-1]
        expected = [nn.Linear, nn.SiLU] * len(hidden) + [nn.Linear]
        if [type(m) for m in net] != expected or not hidden:
            raise NCTInputError("cannot export a coupling whose conditioner is not alternating "
                                "Linear and SiLU layers (at least one) ending with a Linear "
                                "layer")
        scale = layer.feature_scale.detach().cpu().double()
        idx_a, idx_b = layer.idx_a.cpu(), layer.idx_b.cpu()
        n_a, n_b = idx_a.numel(), idx_b.numel()
        mls = layer.max_log_scale
        with torch.no_grad():
            first = hidden[0]  # the conditioner sees q_a / scale_a
            self.first = _with_unit(_augmented(first.weight.T / scale[idx_a, None], first.bias),
                                    BIAS_UNIT)
            self.hidden = [_with_unit(_augmented(h.weight.T, h.bias, BIAS_UNIT), 1.0)
                           for h in hidden[1:]]
            head = torch.zeros(first.out_features + 1, 2 * (n_a + n_b + 1), dtype=torch.float64)
            log_scale = _augmented(last.weight[:n_b].T / mls, last.bias[:n_b] / mls, BIAS_UNIT)
            shift = _augmented(last.weight[n_b:].T * scale[idx_b], last.bias[n_b:] * scale[idx_b],
                               BIAS_UNIT)
            head[:, n_a:n_a + n_b] = log_scale
            head[:, 2 * n_a + n_b + 1:2 * (n_a + n_b) + 1] = shift
        self.head = head
        self.max_log_scale = float(mls)
        order = torch.cat([idx_a, idx_b])
        self.split = torch.eye(order.numel(), dtype=torch.float64)[:, order]
        self.n_a = n_a

    def entry(self, weight: Tensor) -> Tensor:
        """The map of ``[y, 1]`` to this coupling's input ``X = [q, 1, p, BIAS_UNIT]``, given
        ``weight (m + 1, n)``: ``[y, 1]`` -> the flow coordinates ``q`` in their own order."""
        q = weight @ self.split
        unit = torch.zeros(weight.shape[0], 1, dtype=torch.float64)
        unit[-1] = 1.0
        first = torch.cat([q[:, :self.n_a], unit], dim=1) @ self.first
        return torch.cat([q, unit, first], dim=1)


def _network(model: NCTModel, n_cvs: int, dtype: torch.dtype
             ) -> tuple[Affine, Coupling | None]:
    """The entry map (superposed frames -> first coupling's input, or -> CVs) and the chain of
    :class:`Coupling` stages.

    A running augmented map (``[y, 1]`` -> the flow's coordinates in their own order, float64)
    has every linear layer and permutation multiplied into it; it becomes the entry map of the
    next coupling, or the map to the CVs at the end.
    """
    n = model.preprocessing.n_dof
    select = torch.eye(n, dtype=torch.float64)[:, model.latent.slow_order().cpu()] \
        @ model.cv_matrix(n_cvs)
    weight, bias, _, _ = model.preprocessing.affine()  # superposed frames -> model units
    running = _augmented(weight, bias)
    conditioners: list[_Conditioner] = []
    entries: list[Tensor] = []
    for layer in model.flow.layers:
        if isinstance(layer, LINEAR_LAYERS):
            running = running @ _linear_matrix(layer, n)
        elif isinstance(layer, AffineCoupling):
            conditioners.append(_Conditioner(layer))
            entries.append(conditioners[-1].entry(running))
            # z = [coordinates in split order, 1] -> [coordinates in their own order, 1]
            running = _augmented(conditioners[-1].split.T, torch.zeros(n, dtype=torch.float64))
        else:
            raise NCTInputError(f"cannot export flow layer {type(layer).__name__}: only affine "
                                "couplings and linear point transformations are supported")
    entries.append(running @ select)
    chain: Coupling | None = None
    for i in reversed(range(len(conditioners))):
        c = conditioners[i]
        chain = Coupling([h.to(dtype) for h in c.hidden], c.head.to(dtype),
                         entries[i + 1].to(dtype), c.max_log_scale, chain)
    return Affine(entries[0][:-1].to(dtype), entries[0][-1].to(dtype)), chain


def cv_module(model: NCTModel, n_cvs: int = 2, dtype: torch.dtype = torch.float32) -> CVModule:
    """The self-contained positions -> CVs module of a configuration-separable model.

    Parameters
    ----------
    model : NCTModel
        Fitted model; its flow must be configuration-separable.
    n_cvs : int
        Number of CVs returned (:meth:`~nct_md.model.NCTModel.cvs`; 1 <= n_cvs <= 3N - 6).
    dtype : torch.float32 or torch.float64
        Precision of the network (the superposition always runs in float64); outputs come
        back in the input's dtype.

    Returns
    -------
    CVModule
        In eval mode, no parameters requiring grad; ``module(x)`` maps ``(B, 3N)`` nm to
        ``(B, n_cvs)`` ps.
    """
    model.check_separable()
    d = model.preprocessing.n_dof
    if not 1 <= n_cvs <= d:
        raise NCTInputError(f"n_cvs must be between 1 and {d}, got {n_cvs}")
    if dtype not in DTYPES.values():
        raise NCTInputError(f"dtype must be float32 or float64, got {dtype}")
    model = copy.deepcopy(model).cpu()
    pre = model.preprocessing
    superposition = Superposition(pre.reference.double(), pre.masses.double())
    module = CVModule(CVNetwork(superposition, *_network(model, n_cvs, dtype)),
                      list(model.info.atom_indices))
    return module.eval()


def metadata(model: NCTModel, n_cvs: int, dtype: torch.dtype) -> dict:
    """JSON-able description of an exported CV module (stored inside the TorchScript file)."""
    return {
        "format": "nct-md-cv-torchscript",
        "nct_md_version": __version__,
        "n_cvs": int(n_cvs),
        "n_atoms": int(model.preprocessing.masses.numel()),
        "atom_indices": list(model.info.atom_indices),
        "atom_names": model.atom_names,
        "masses": model.preprocessing.masses.cpu().tolist(),
        "frequencies_per_ps": [float(w) for w in model.cv_frequencies(n_cvs)],
        "temperature": model.info.temperature,
        "dtype": str(dtype).removeprefix("torch."),
        "input": "positions of atom_indices in nm, shape (batch, 3 n_atoms), x1,y1,z1,x2,...",
        "output": "n_cvs CVs (slowest latent positions Q, CV1 and CV2 along the model's kinetic "
                  "axes when it has them), shape (batch, n_cvs), ps (model units)",
    }


def save_torchscript(model: NCTModel, path: str | os.PathLike, n_cvs: int = 2,
                     dtype: torch.dtype = torch.float32, overwrite: bool = False) -> dict:
    """Script the CV module of ``model`` and write it to ``path`` atomically.

    Returns the metadata dict stored in the file as ``nct_md.json``.
    """
    scripted = torch.jit.script(cv_module(model, n_cvs, dtype))
    info = metadata(model, n_cvs, dtype)
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(info)})
    return info


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict]:
    """Load a file written by :func:`save_torchscript`: ``(module, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"CV file {path} not found; write it with `nct-md export`")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise NCTInputError(f"{path} is not a TorchScript file ({str(exc).splitlines()[0]})"
                            ) from None
    if not extra[METADATA_FILE]:
        raise NCTInputError(f"{path} is TorchScript but not an nct-md CV export")
    return module, json.loads(extra[METADATA_FILE])


def parse_dtype(name: str) -> torch.dtype:
    """``"float32"``/``"float64"`` -> torch dtype (NCTInputError otherwise)."""
    if name not in DTYPES:
        raise NCTInputError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]

