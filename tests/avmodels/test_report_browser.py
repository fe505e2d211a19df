"""The HTML report in a real browser: headless Chromium renders the table and the images.

Chromium is Debian's ``chromium`` package; when it is absent the session
fixture installs it once with apt-get (we run as root), and the tests skip
with the reason when that is not possible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from avmodels import report

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, installed with apt-get if needed."""
    found = _find_chromium()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get cannot install it here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=300, check=True)
        subprocess.run(
            [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"],
            env=env,
            capture_output=True,
            timeout=600,
            check=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        tail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"chromium could not be installed with apt-get: {exc} {tail[-300:]!r}")
    found = _find_chromium()
    if not found:
        pytest.skip("apt-get finished but no chromium binary was found")
    return found


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A report with a model, two baselines, a ceiling, a curve and overlays."""
    out = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)

    def metrics(ciou: float, pointing: float, decay: float) -> dict:
        curve = [float(max(0.0, 1.0 - decay * t / 20)) for t in range(21)]
        return {"ciou": ciou, "auc": 0.4, "mean_iou": 0.4, "pointing": pointing, "curve": curve}

    rows = [
        report.Row("ssl-tie", "model", {**metrics(0.8, 0.95, 1.1), "n": 160}),
        report.Row("centre", "baseline", {**metrics(0.01, 0.5, 2.0), "n": 160}),
        report.Row("random", "baseline", {**metrics(0.0, 0.3, 3.0), "n": 160}),
        report.Row("ceiling", "ceiling", {**metrics(1.0, 1.0, 1.0), "n": 160}),
    ]
    frame = rng.integers(60, 200, size=(96, 96, 3), dtype=np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[2:5, 3:6] = 1.0
    ex = report.Example("synthav_000001", frame, heat, [[0.3, 0.2, 0.8, 0.7]], 0.71, True)
    bad = report.Example("synthav_000002", frame, heat[::-1], [[0.0, 0.0, 0.3, 0.3]], 0.1, False)
    report.write_report(out, rows, title="SynthAV demo", best=[ex, ex], worst=[bad])
    return out / "index.html"


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.imgs: list[str] = []
        self.cells: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-name" in a:
            self.rows.append(a["data-name"])
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "td":
            self._in_td = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_td = False

    def handle_data(self, data):
        if self._in_td and data.strip():
            self.cells.append(data.strip())


def test_report_dom_in_chromium(chromium, page, tmp_path):
    res = run_chromium(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = Dom()
    dom.feed(res.stdout)
    assert dom.rows == ["ssl-tie", "centre", "random", "ceiling"]
    assert "0.800" in dom.cells and "(+0.790)" in dom.cells  # model cIoU and its margin
    assert dom.imgs == ["success.png", "best-1.png", "best-2.png", "worst-1.png"]
    for src in dom.imgs:  # every image the page links is a PNG that decodes
        assert (page.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = cv2.imread(str(page.parent / src))
        assert img is not None and min(img.shape[:2]) >= 200


def test_report_screenshot_shows_the_images(chromium, page, tmp_path):
    shot = tmp_path / "shot.png"
    res = run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1100,1700",
        page.as_uri(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1700, 1100)
    assert img.std() > 10  # not a blank page
    # The page itself is black on white with grey rules; saturated colour can only come
    # from the rendered PNGs (the jet heat maps, the coloured curves, the green boxes).
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    saturated = (hsv[..., 1] > 150) & (hsv[..., 2] > 80)
    assert saturated.mean() > 0.01
    # the heat maps' strong red and the ground-truth green are both on screen
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((r > 150) & (g < 80) & (b < 80)).sum() > 200
    assert ((g > 180) & (r < 90) & (b < 90)).sum() > 50
