"""Export slow NCT CVs for enhanced sampling: TorchScript (PLUMED), OpenMM forces, metadynamics.

Only configuration-separable models export (their latent positions depend on positions only).

Modules
-------
- :mod:`~nct_md.export.cvmodule`: the self-contained positions -> CVs network (scriptable,
  no nct_md import at load time).
- :mod:`~nct_md.export.torchscript`: :func:`cv_module`, :func:`save_torchscript`,
  :func:`load_torchscript` (PLUMED PYTORCH_MODEL convention: float32 ``(1, 3N)`` nm in,
  ``(1, k)`` out).
- :mod:`~nct_md.export.plumed`: :func:`plumed_input`, a ready ``plumed.dat``.
- :mod:`~nct_md.export.openmm_force`: :func:`cv_forces`, :func:`add_cv_force`,
  :func:`bias_variables` (``openmm.PythonForce`` CVs for ``CustomCVForce`` and
  ``openmm.app.Metadynamics``), :func:`torch_forces` (openmm-torch, where installed).
- :mod:`~nct_md.export.metad`: :func:`run_metadynamics`, well-tempered metadynamics along the
  slowest CVs (``nct-md metad``).
"""

from nct_md.export.metad import default_bias, phi_sign_changes, run_metadynamics
from nct_md.export.openmm_force import add_cv_force, bias_variables, cv_forces, torch_forces
from nct_md.export.plumed import default_widths, plumed_input
from nct_md.export.torchscript import cv_module, load_torchscript, save_torchscript

__all__ = [
    "add_cv_force",
    "bias_variables",
    "cv_forces",
    "cv_module",
    "default_bias",
    "default_widths",
    "load_torchscript",
    "phi_sign_changes",
    "plumed_input",
    "run_metadynamics",
    "save_torchscript",
    "torch_forces",
]
