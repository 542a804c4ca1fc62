"""The status page in a real browser: headless Chromium from the distribution's packages loads it
from the daemon's HTTP server at a desktop's and at a phone's width.  The page is drawn as with
scripts turned off: it has none, and the Content-Security-Policy it is served with refuses any.
(Chromium's own switch for that, ``--blink-settings=scriptEnabled=false``, also stops its headless
screenshots and DOM dumps, which are taken with a script.)

The screenshots are kept as test artefacts in ``test-artifacts/`` (``status-page.png``,
``status-page-phone.png``).  Outside CI a machine without Chromium skips these tests; in CI
(``CI`` set, as ``.ci/run`` does) a missing browser fails them.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from syncd.metrics import Metrics, MetricsServer
from syncd.metrics_server import HttpServer, Request, Response
from syncd.status_page import gather, render
from tests.status_history import history
from tests.test_status_page import UNHEALTHY, Page

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DESKTOP = (1200, 1900)
PHONE = (390, 844)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it", pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The daemon's metrics server with the page of a store that has seen some history, and
    ``/probe/WIDTH``: :data:`PROBE`."""
    with history(tmp_path_factory.mktemp("browser")) as world:
        view = gather(world.store)
        metrics = Metrics(60)
        served = MetricsServer("127.0.0.1:0", metrics, page=lambda: render(view, UNHEALTHY))

        def app(request: Request) -> Response:
            if request.path.startswith("/probe/"):
                probe = PROBE.replace("WIDTH", request.path.removeprefix("/probe/"))
                return Response(HTTPStatus.OK, "text/html; charset=utf-8", probe.encode())
            return served.answer(request)

        server = HttpServer("127.0.0.1", 0, app)
        server.start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.stop()


PROBE = """<!doctype html>
<html><body><iframe id="page" style="border:0" width="WIDTH" height="800"></iframe><pre id="probe"></pre>
<script>
fetch("/").then((answer) => answer.text()).then((html) => {
  const frame = document.getElementById("page");
  frame.addEventListener("load", () => {
    const page = frame.contentDocument;
    const wide = [...page.querySelectorAll("body *")].filter(
      (element) => element.getBoundingClientRect().right > WIDTH + 1 && !element.closest(".scroll"));
    document.getElementById("probe").textContent =
      `width=${frame.contentWindow.innerWidth} scroll=${page.documentElement.scrollWidth} ` +
      `wide=${wide.map((element) => element.tagName + "." + element.className).join(",") || "none"}`;
  });
  frame.srcdoc = html;
});
</script></body></html>"""
"""Draws the page in a frame as wide as a phone (a headless window is never narrower than 500
pixels) and writes what is wider than that frame."""


def browse(chromium: str, tmp_path: Path, size: tuple[int, int], *args: str) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={size[0]},{size[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the decompressed pixels hold (a blank page has
    a handful)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, width, height, pixels = 8, 0, 0, b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels += body
        offset += 12 + length
    return width, height, len(set(zlib.decompress(pixels)))


def screenshot(chromium: str, tmp_path: Path, url: str, size: tuple[int, int], name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    target.unlink(missing_ok=True)
    browse(chromium, tmp_path, size, f"--screenshot={target}", url)
    return target


@pytest.mark.parametrize(("size", "name"), [(DESKTOP, "status-page.png"), (PHONE, "status-page-phone.png")])
def test_the_page_renders_with_scripts_off_and_is_kept_as_a_screenshot(
    chromium: str, site: str, tmp_path: Path, size: tuple[int, int], name: str
) -> None:
    dom = browse(chromium, tmp_path, size, "--dump-dom", f"{site}/")  # the DOM is read out by a script
    words = Page(dom).words
    assert "syncd Unhealthy" in words and "Seats 25 active users" in words
    assert "A safety limit is holding run #6's plan" in words
    assert "USER_INVALID error 3 1 #5" in words
    assert dom.count("<rect") == 4 * 6
    shot = screenshot(chromium, tmp_path, f"{site}/", size, name)  # served with script-src 'none'

    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == size
    assert colours > 40, "the screenshot is blank"


@pytest.mark.parametrize("size", [(320, 640), PHONE, DESKTOP])
def test_nothing_is_wider_than_the_screen(chromium: str, site: str, tmp_path: Path, size: tuple[int, int]) -> None:
    window = (max(size[0] + 40, 600), size[1] + 40)
    dom = browse(chromium, tmp_path, window, "--virtual-time-budget=5000", "--dump-dom", f"{site}/probe/{size[0]}")
    probe = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    assert probe is not None and probe.group(1), dom[-1500:]
    measured = dict(item.split("=", 1) for item in probe.group(1).split())
    assert int(measured["width"]) == size[0], probe.group(1)
    assert int(measured["scroll"]) <= size[0] and measured["wide"] == "none", probe.group(1)
