"""Discover states the data never showed: the learn -> bias -> relearn loop (``nct-md explore``).

Public API
----------
explore(pdb, out_dir, ...) -> list[dict]
    Plain MD (or given trajectories), then rounds of: fit an NCT model to all frames so far
    with their weights, well-tempered metadynamics on its slowest CVs, append the biased
    frames. Writes one folder per iteration and one line of ``explore.json`` per iteration;
    resumable (:mod:`nct_md.explore.loop`).

Modules: :mod:`~nct_md.explore.loop` (the driver), :mod:`~nct_md.explore.inputs` (checks),
:mod:`~nct_md.explore.runs` (frames and weights so far), :mod:`~nct_md.explore.states` (new
states and backbone basins), :mod:`~nct_md.explore.record` (the folder and its log).
"""

from nct_md.explore.loop import explore

__all__ = ["explore"]
