"""A single self-contained HTML page that animates conformations, entirely offline.

The page inlines NGL (see :mod:`nct_md.viz.ngl`) and the frames as a multi-model PDB string;
it loads nothing from anywhere and holds no ``http(s)://`` text (the tests load it in headless
Chromium with the network blocked and observe no request but the page's own file: URL).
Controls: play/pause and a frame slider. ``window.nctViewer`` exposes ``ready`` (a promise),
``play()``, ``pause()``, ``show(i)`` and ``frame()`` for scripting and tests.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from pathlib import Path

import mdtraj as md

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError
from nct_md.viz.ngl import make_inline_safe, ngl_script

_URL = re.compile(r"https?://", re.IGNORECASE)
_FIELD = re.compile(r"__(TITLE|NGL|PDB|OPTIONS|LAST)__")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  html, body { margin: 0; height: 100%; font-family: sans-serif; background: #ffffff; }
  #viewport { width: 100%; height: calc(100% - 3em); }
  #controls { display: flex; align-items: center; gap: 0.75em; height: 3em; padding: 0 1em;
              box-sizing: border-box; }
  #slider { flex: 1; }
  #play { min-width: 5em; }
</style>
</head>
<body>
<div id="viewport"></div>
<div id="controls">
  <button id="play" type="button">Play</button>
  <input id="slider" type="range" min="0" max="__LAST__" step="1" value="0"
         aria-label="frame">
  <span id="label"></span>
</div>
<script>
__NGL__
</script>
<script>
(function () {
  "use strict";
  var pdb = __PDB__;
  var options = __OPTIONS__;
  var last = __LAST__;
  var button = document.getElementById("play");
  var slider = document.getElementById("slider");
  var label = document.getElementById("label");
  var stage = new NGL.Stage("viewport", {backgroundColor: "white"});
  var state = {frame: 0, step: 1, timer: null, trajectory: null};

  function show(i) {
    state.frame = Math.max(0, Math.min(last, i));
    slider.value = state.frame;
    label.textContent = "frame " + (state.frame + 1) + " / " + (last + 1);
    if (state.trajectory) state.trajectory.setFrame(state.frame);
  }
  function advance() {
    if (options.rock && last > 0 && (state.frame + state.step > last ||
                                     state.frame + state.step < 0)) {
      state.step = -state.step;
    }
    show(options.rock ? state.frame + state.step : (state.frame + 1) % (last + 1));
  }
  function play() {
    if (state.timer === null && last > 0) {
      state.timer = setInterval(advance, 1000 / options.fps);
      button.textContent = "Pause";
    }
  }
  function pause() {
    if (state.timer !== null) clearInterval(state.timer);
    state.timer = null;
    button.textContent = "Play";
  }
  button.addEventListener("click", function () {
    if (state.timer === null) { play(); } else { pause(); }
  });
  slider.addEventListener("input", function () { pause(); show(Number(slider.value)); });
  window.addEventListener("resize", function () { stage.handleResize(); });

  var blob = new Blob([pdb], {type: "text/plain"});
  var ready = stage.loadFile(blob, {ext: "pdb", asTrajectory: true}).then(function (comp) {
    comp.addRepresentation(options.representation, options.params);
    comp.autoView();
    state.trajectory = comp.addTrajectory().trajectory;
    show(0);
    if (options.autoplay) play();
  });
  window.nctViewer = {ready: ready, play: play, pause: pause, show: show,
                      frame: function () { return state.frame; }};
})();
</script>
</body>
</html>
"""


def pdb_text(traj: md.Trajectory) -> str:
    """The trajectory as multi-model PDB text (mdtraj's writer; coordinates in angstrom)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frames.pdb"
        traj.save_pdb(str(path))
        return path.read_text()


def _js_value(value: object) -> str:
    """JSON as a JavaScript literal inside ``<script>``: ``<`` as ``\\u003c``, no URL text."""
    return make_inline_safe(json.dumps(value).replace("<", "\\u003c"))


def html_page(traj: md.Trajectory, title: str = "nct-md conformations",
              representation: str = "ball+stick", fps: float = 10.0, rock: bool = True,
              autoplay: bool = True, **params: object) -> str:
    """A self-contained HTML page that animates the frames of ``traj``.

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Frames to show (positions in nm), e.g. from :func:`nct_md.viz.interpolate`.
    title : str
        Page title.
    representation : str
        NGL representation; ``"ball+stick"`` suits small molecules (also ``"licorice"``,
        ``"spacefill"``, ``"line"``).
    fps : float
        Frames per second while playing.
    rock : bool
        Play forwards and backwards (a to b to a) instead of jumping back to the first frame.
    autoplay : bool
        Start playing once loaded.
    **params
        NGL representation parameters, e.g. ``radiusScale=0.8``, ``colorScheme="element"``.

    Returns
    -------
    str
        The page; it contains no ``http://`` or ``https://`` text.
    """
    if traj.n_frames < 1:
        raise NCTInputError("no frames to show")
    if not (isinstance(fps, int | float) and 0 < fps <= 120):
        raise NCTInputError(f"fps must be a number in (0, 120], got {fps}")
    options = {"representation": representation, "params": params, "fps": float(fps),
               "rock": bool(rock), "autoplay": bool(autoplay)}
    fields = {
        "TITLE": html.escape(title),
        "NGL": ngl_script(),
        "PDB": _js_value(pdb_text(traj)),
        "OPTIONS": _js_value(options),
        "LAST": str(traj.n_frames - 1),
    }
    page = _FIELD.sub(lambda m: fields[m.group(1)], _PAGE)
    if _URL.search(page):
        raise NCTInputError("the page would contain an http(s) URL (from the title); "
                            "choose a title without one")
    return page


def write_html(traj: md.Trajectory, path: str | os.PathLike, overwrite: bool = True,
               **options: object) -> Path:
    """Write :func:`html_page` of ``traj`` to ``path`` atomically; returns the path.

    ``options`` are those of :func:`html_page`.
    """
    page = html_page(traj, **options)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)
