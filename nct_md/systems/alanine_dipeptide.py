"""Where the shipped alanine-dipeptide data is: :func:`data_dir`.

The data (the repository's ``data/`` folder: ``alanine-dipeptide-300K/*.h5``, the heavy-atom
model ``alanine-dipeptide-heavy.pt``, ``alanine-dipeptide.pdb``, ...) is installed by a wheel
under ``<sys.prefix>/share/nct-md/data`` (``data_files`` of setup.cfg); an editable install
(``pip install -e``) does not install it, so pass the folder or set :data:`ENV_VAR`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nct_md.errors import NCTInputError

#: environment variable naming the data folder
ENV_VAR = "NCT_MD_DATA"
#: the 300 K OBC trajectories (6 x 4,000 frames, 1 ps apart, positions and velocities)
TRAJECTORIES_300K = "alanine-dipeptide-300K"


def data_dir() -> Path:
    """The folder of the shipped data.

    Looked up in order: the environment variable ``NCT_MD_DATA``, then
    ``<sys.prefix>/share/nct-md/data`` (where a wheel installs it).

    Raises
    ------
    NCTInputError
        When ``NCT_MD_DATA`` names no folder, or neither place holds the data.
    """
    named = os.environ.get(ENV_VAR)
    if named:
        if not Path(named).is_dir():
            raise NCTInputError(f"{ENV_VAR}={named} is not a folder; point it at the "
                                "repository's data/ folder")
        return Path(named)
    installed = Path(sys.prefix) / "share" / "nct-md" / "data"
    if installed.is_dir():
        return installed
    raise NCTInputError(f"the shipped data is not installed under {installed}; pass --data DIR "
                        f"(the repository's data/ folder) or set {ENV_VAR}")
