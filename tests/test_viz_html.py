"""Self-contained HTML animation (nct_md.viz.html, nct_md.viz.ngl), checked in headless Chromium.

The browser test needs Chromium (Debian: ``apt-get install -y chromium``, or ``make browser``)
and skips, saying so, where it is missing. It drives Chromium through the DevTools protocol over
a pipe (``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4) and
reads Chromium's net log (``--log-net-log``), so it needs no Python package beyond the standard
library. That the page makes no network request is observed there; the search of the page's
text for ``http(s)://`` below is a secondary, static check.
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
#: the network, blocked: no host name resolves, and proxied requests go to a closed local port
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9")
#: the one remote URL of the control page (a reserved domain, and never reached: see OFFLINE)
PROBE = "http://nct-md-probe.example.org/probe.png"


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


def test_page_has_no_url_and_no_external_reference(traj):
    """Static, secondary check of the text (the browser test observes the requests)."""
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

    def __init__(self, executable: str, profile: Path, *flags: str):
        child_in, self._out = os.pipe()
        self._in, child_out = os.pipe()
        command = [sys.executable, "-c", LAUNCH, str(child_in), str(child_out), executable,
                   *FLAGS, *flags, f"--user-data-dir={profile}", "about:blank"]
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

    def requests(self) -> list[str]:
        """URLs of the page's requests so far (``Network.requestWillBeSent``; needs
        ``Network.enable``), less data: and blob: URLs, which never leave the browser."""
        return [event["params"]["request"]["url"] for event in self._events
                if event.get("method") == "Network.requestWillBeSent"
                and not event["params"]["request"]["url"].startswith(("data:", "blob:"))]

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


@pytest.fixture
def chromium() -> str:
    """The Chromium executable; skips the test, saying how to install it, where it is missing."""
    executable = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium, or "
                    "`make browser`); the offline HTML page is then not checked in a browser")
    return executable


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


def page_requests(net_log: Path) -> list[str]:
    """URLs of the requests that Chromium's network stack started on behalf of a web page.

    Every URL request of the whole browser is logged as ``URL_REQUEST_START_JOB``; those that a
    page (or its workers) made carry the page's origin as ``initiator`` (``"null"`` for a file:
    page), those of Chromium's own services (updates, time, sign-in) ``"not an origin"``.
    file:, data: and blob: URLs never reach the network stack, so they are not in the log.
    """
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [event["params"] for event in log["events"] if event["type"] == start]
    return [job["url"] for job in jobs if job.get("initiator", "not an origin") != "not an origin"]


def test_page_draws_and_plays_offline_in_chromium(chromium, traj, tmp_path):
    """What the browser proves about the page ``write_html`` makes.

    Chromium runs headless with the network blocked (every host name resolves to nothing and
    every proxied request goes to a closed local port), loads the page from a file: URL and:

    - DevTools' Network domain reports exactly one request by the page, its own file: URL
      (data: and blob: URLs, which never leave the browser, would not count);
    - Chromium's net log, which records every URL request of the whole browser, holds no
      request made on behalf of the page (only Chromium's own background services, which the
      network block stops);
    - NGL draws the molecule: at least 1 % of the viewer's pixels differ from the background;
    - Play advances the frame counter (``window.nctViewer.frame()`` and the slider) and changes
      the pixels, and Pause stops it;
    - ``make_inline_safe``'s escapes read back as the original text in JavaScript.

    A control page with one remote image, loaded afterwards in the same browser, shows up in
    both observers, so "no request" is something they would have seen.
    """
    started = time.monotonic()
    page = write_html(traj, tmp_path / "path.html", autoplay=False, fps=10)
    control = tmp_path / "control.html"
    control.write_text(f'<img src="{PROBE}">')
    net_log = tmp_path / "net-log.json"
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = DevTools(chromium, profile, f"--log-net-log={net_log}", *OFFLINE)
    try:
        browser.page("Network.enable")
        browser.page("Page.enable")
        browser.page("Page.navigate", url=page.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        browser.evaluate("window.nctViewer.ready.then(() => true)")
        rect = browser.evaluate("(() => { const r = document.getElementById('viewport')"
                                ".getBoundingClientRect(); return {x: r.x, y: r.y, "
                                "width: r.width, height: r.height}; })()")
        loaded = screenshot_when(browser, rect, lambda image: non_background(image) >= 0.01)
        drawn = non_background(loaded)
        first_frame = browser.evaluate("window.nctViewer.frame()")
        browser.evaluate("document.getElementById('play').click()")
        time.sleep(1.0)
        browser.evaluate("document.getElementById('play').click()")  # pause
        frame = browser.evaluate("window.nctViewer.frame()")
        slider = browser.evaluate("document.getElementById('slider').value")
        time.sleep(0.3)
        paused_frame = browser.evaluate("window.nctViewer.frame()")

        def pixels_changed(image: np.ndarray) -> float:
            return float((np.abs(image - loaded).max(-1) > 0.05).mean())

        played = screenshot_when(browser, rect, lambda image: pixels_changed(image) > 0.001)
        original = 'x = ["https://a.org/b", `http://c`, /<!--(.*)-->/.exec("<!--d-->")[1]]; "</s"'
        escapes = browser.evaluate(make_inline_safe(original) + "; x")
        seen_by_page = browser.requests()
        browser.page("Page.navigate", url=control.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        seen_by_control = browser.requests()[len(seen_by_page):]
    finally:
        browser.close()
    logged = page_requests(net_log)
    print(f"page requests seen by DevTools: {seen_by_page}; by the net log: "
          f"{[url for url in logged if url != PROBE]} (control: {logged.count(PROBE)}); "
          f"drawn {drawn:.4f} of the viewer's pixels; after 1 s of play frame {frame}, "
          f"{pixels_changed(played):.4f} of the pixels changed; {time.monotonic() - started:.1f} s")
    assert seen_by_page == [page.resolve().as_uri()]
    assert logged == [PROBE]  # the control's image, and nothing from the page
    assert seen_by_control == [control.resolve().as_uri(), PROBE]
    assert drawn >= 0.01
    assert first_frame == 0 and frame > 0 and slider == str(frame) and paused_frame == frame
    assert pixels_changed(played) > 0.001
    assert escapes == ["https://a.org/b", "http://c", "d"]
