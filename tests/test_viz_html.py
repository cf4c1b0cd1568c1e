"""Self-contained HTML animation (nct_md.viz.html, nct_md.viz.ngl), checked in headless Chromium.

The browser test needs Chromium (Debian: ``apt-get install -y chromium chromium-driver``) and
skips, saying so, where it is missing. It drives Chromium through the DevTools protocol over a
pipe (``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4), so
it needs no Python package beyond the standard library.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import mdtraj as md
import numpy as np
import pytest

from nct_md.errors import NCTInputError
from nct_md.viz import html_page, write_html
from nct_md.viz.ngl import NGLNotFound, make_inline_safe, ngl_script

DATA = Path(__file__).resolve().parent.parent / "data"
URL = re.compile(r"https?://", re.IGNORECASE)
#: Runs in the child: puts the two pipe ends on descriptors 3 and 4, then becomes Chromium.
LAUNCH = ("import os, sys\n"
          "a, b = os.dup(int(sys.argv[1])), os.dup(int(sys.argv[2]))\n"
          "os.dup2(a, 3)\n"
          "os.dup2(b, 4)\n"
          "os.set_inheritable(3, True)\n"  # dup2(3, 3) is a no-op that keeps close-on-exec
          "os.set_inheritable(4, True)\n"
          "os.execv(sys.argv[3], sys.argv[3:])\n")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=640,640",
         "--remote-debugging-pipe")


@pytest.fixture(scope="module")
def traj() -> md.Trajectory:
    """Twenty heavy-atom frames of the shipped data, a few ps apart."""
    full = md.load(str(DATA / "alanine-dipeptide-300K" / "phi-neg-c7eq-1.h5"), stride=25)[:20]
    heavy = full.atom_slice(full.topology.select("not element H"))
    return heavy.superpose(heavy, 0)


def test_ngl_script_is_self_contained():
    script = ngl_script()
    assert "window.NGL = require(" in script
    assert not URL.search(script)
    assert not re.search(r"</script|<!--", script, re.IGNORECASE)
    assert len(script) < 3_000_000  # NGL and its three small dependencies, not the whole bundle


@pytest.fixture
def fake_bundle(tmp_path, monkeypatch):
    """Point the bundle search at ``tmp_path``; returns a writer of a fake ``index.js``."""
    monkeypatch.setattr("jupyter_core.paths.jupyter_path", lambda *_: [str(tmp_path)])
    ngl_script.cache_clear()

    def write(text: str) -> None:
        (tmp_path / "nglview-js-widgets").mkdir()
        (tmp_path / "nglview-js-widgets" / "index.js").write_text(text)

    yield write
    ngl_script.cache_clear()


def test_ngl_module_and_its_requirements_are_extracted(fake_bundle):
    fake_bundle('define([],()=>{var __webpack_modules__={7:(e,t,n)=>{n.d(t,{Stage:()=>s,'
                'autoLoad:()=>a});var q=n(8),s=1,a=2},8:function(e,t,n){e.exports="dep"},'
                '9:e=>{e.exports="unused http://x"}},__webpack_module_cache__={};});')
    script = ngl_script()
    assert "7:(e,t,n)=>{n.d(t,{Stage" in script and '8:function(e,t,n){e.exports="dep"}' in script
    assert "unused" not in script and "window.NGL = require(7)" in script


def test_missing_or_foreign_bundle_is_reported(fake_bundle):
    with pytest.raises(NGLNotFound, match="not found"):
        ngl_script()
    fake_bundle("var __webpack_modules__={1:(e,t,n)=>{e.exports=1}},__webpack_module_cache__={}")
    with pytest.raises(NGLNotFound, match="found 0 NGL modules"):
        ngl_script()


def test_make_inline_safe_leaves_no_url_or_html_breaker():
    js = 'a="HTTPS://x.org/y";b=`http://z`;c=/<!--[^]*?-->/;d="</script>"//see http://q\n'
    safe = make_inline_safe(js)
    assert not URL.search(safe) and "</script" not in safe and "<!--" not in safe
    assert safe.replace("\\/", "/").replace("\\x3C", "<") == js


def test_page_has_no_url_and_loads_nothing(traj):
    page = html_page(traj, title="C7eq <to> alphaR")
    assert not URL.search(page)
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)
    assert markup.count("<script") == 0
    assert not re.search(r"\b(src|href)\s*=|<link|@import|url\(", markup, re.IGNORECASE)
    assert "C7eq &lt;to&gt; alphaR" in page
    pdb = json.loads(re.search(r"var pdb = (\".*?\");\n", page).group(1))
    assert pdb.count("MODEL") == traj.n_frames
    assert 'max="19"' in page


def test_page_rejects_bad_input(traj, tmp_path):
    with pytest.raises(NCTInputError, match="URL"):
        html_page(traj, title="see https://example.org")
    with pytest.raises(NCTInputError, match="fps"):
        html_page(traj, fps=0)
    with pytest.raises(NCTInputError, match="no frames"):
        html_page(traj[:0])
    out = write_html(traj[:2], tmp_path / "a.html")
    with pytest.raises(FileExistsError):
        write_html(traj[:2], out, overwrite=False)


# -- headless Chromium --------------------------------------------------------------------------

class DevTools:
    """Chromium driven over ``--remote-debugging-pipe`` (one page, flat sessions)."""

    def __init__(self, executable: str, profile: Path):
        child_in, self._out = os.pipe()
        self._in, child_out = os.pipe()
        command = [sys.executable, "-c", LAUNCH, str(child_in), str(child_out), executable,
                   *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(command, pass_fds=(child_in, child_out),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self._buffer, self._id, self._events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def _message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("Chromium did not answer")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout: float = 60.0,
             **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def page(self, method: str, **params) -> dict:
        return self.call(method, session=self.session, **params)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for message in self._events:
                if message.get("method") == event:
                    self._events.remove(message)
                    return message
            self._events.append(self._message(max(0.0, deadline - time.monotonic())))

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, clip: dict) -> np.ndarray:
        """RGB ``(height, width, 3)`` floats in [0, 1] of the page region ``clip`` (CSS px)."""
        data = self.page("Page.captureScreenshot", format="png", clip={**clip, "scale": 1})
        return matplotlib.image.imread(io.BytesIO(base64.b64decode(data["data"])))[..., :3]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (TimeoutError, OSError):  # exited before answering
            self.process.kill()
        finally:
            self.process.wait(timeout=30)
            os.close(self._in)
            os.close(self._out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium "
                    "chromium-driver)")
    devtools = DevTools(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield devtools
    devtools.close()


def screenshot_when(browser: DevTools, clip: dict, condition, timeout: float = 15.0
                    ) -> np.ndarray:
    """Screenshots of ``clip`` until ``condition(image)`` holds (NGL renders asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        image = browser.screenshot(clip)
        if condition(image) or time.monotonic() > deadline:
            return image
        time.sleep(0.2)


def non_background(image: np.ndarray) -> float:
    """Fraction of pixels that differ from the most common colour (the background)."""
    colours, counts = np.unique(image.reshape(-1, 3).round(2), axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return float((np.abs(image - background).max(-1) > 0.05).mean())


def test_page_draws_and_plays_in_chromium(browser, traj, tmp_path):
    page = write_html(traj, tmp_path / "path.html", autoplay=False, fps=10)
    browser.page("Page.enable")
    browser.page("Page.navigate", url=page.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    browser.evaluate("window.nctViewer.ready.then(() => true)")
    rect = browser.evaluate("(() => { const r = document.getElementById('viewport')"
                            ".getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width,"
                            " height: r.height}; })()")
    loaded = screenshot_when(browser, rect, lambda image: non_background(image) >= 0.01)
    drawn = non_background(loaded)
    assert browser.evaluate("window.nctViewer.frame()") == 0
    browser.evaluate("document.getElementById('play').click()")
    time.sleep(1.0)
    browser.evaluate("document.getElementById('play').click()")  # pause
    frame = browser.evaluate("window.nctViewer.frame()")

    def pixels_changed(image: np.ndarray) -> float:
        return float((np.abs(image - loaded).max(-1) > 0.05).mean())

    played = screenshot_when(browser, rect, lambda image: pixels_changed(image) > 0.001)
    print(f"drawn {drawn:.4f} of the viewer's pixels; after 1 s of play frame {frame}, "
          f"{pixels_changed(played):.4f} of the pixels changed")
    assert drawn >= 0.01
    assert frame > 0 and browser.evaluate("document.getElementById('slider').value") == str(frame)
    assert browser.evaluate("window.nctViewer.frame()") == frame  # paused
    assert pixels_changed(played) > 0.001
    # the escapes of make_inline_safe read back as the original text in JavaScript
    original = 'x = ["https://a.org/b", `http://c`, /<!--(.*)-->/.exec("<!--d-->")[1]]; "</s"'
    assert browser.evaluate(make_inline_safe(original) + "; x") == ["https://a.org/b",
                                                                       "http://c", "d"]
