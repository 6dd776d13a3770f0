"""The report page in a real browser: Debian's headless Chromium, driven by Playwright
(no browser download: it launches /usr/bin/chromium), opens ``file://.../index.html``
with the network off and must draw every chart without a console error.

A full-page screenshot of each page is kept as a test artefact in
``$CVJ_TEST_ARTIFACTS`` (default ``.artifacts/`` at the top of the checkout).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import cvj
import cvj.report
from cvj.study import compare, load_study

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "scenarios" / "default.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("CVJ_TEST_ARTIFACTS", ROOT / ".artifacts"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's chromium)"),
]

STUDY = f"""
format = 1
name = "browser-study"
scenario = "{DEFAULT}"
replications = 3
days = 60
customers = 5000
baseline = "mid"
kpis = ["profit", "conversions", "cac", "payback_day"]

[variants.mid]
[variants.free]
overrides = {{ "offers.entry.price" = 0.0 }}
[variants.shift]
marketer = {{ policy = "shift", review_days = 5 }}
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, cvj.report.Report]:
    tmp = tmp_path_factory.mktemp("browser")
    sc = cvj.load_scenario(None, {"market.customers": 20_000, "market.days": 120})
    run_dir = cvj.run(sc, customers_table=True).write(tmp / "run")
    (tmp / "s.toml").write_text(STUDY)
    compare(load_study(tmp / "s.toml"), out=tmp / "study", workers=1)
    return {"run": cvj.report.report(run_dir), "study": cvj.report.report(tmp / "study")}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, offline=True, viewport={"width": 1100, "height": 900}
        )
        yield ctx
        ctx.close()


@pytest.mark.parametrize("kind", ["run", "study"])
def test_every_chart_renders_offline_without_console_errors(pages, browser, kind):
    from PIL import Image

    rep = pages[kind]
    page = browser.new_page()
    console, requests = [], []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(rep.path.as_uri(), wait_until="load")
    # vega-embed marks each chart's div when its view has run
    page.wait_for_function(
        "document.querySelectorAll('div.chart').length === document.querySelectorAll('div.chart[data-rendered]').length",
        timeout=30_000,
    )
    drawn = page.evaluate(
        """Array.from(document.querySelectorAll('div.chart')).map(el => {
            const svg = el.querySelector('svg');
            const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
            return {id: el.id, marks: svg ? svg.querySelectorAll('path, rect, line, text').length : 0,
                    width: box.width, height: box.height};
        })"""
    )
    assert [d["id"] for d in drawn] == [f"chart-{p.id}" for p in rep.charts]
    for d in drawn:
        assert d["marks"] >= 10 and d["width"] > 200 and d["height"] > 80, d
    assert not [c for c in console if c.startswith(("error", "warning", "pageerror"))], console
    fetched = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert not fetched, fetched  # nothing from the network, not even tried

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{kind}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    img = Image.open(shot).convert("RGB")
    assert img.height > 2000  # the whole page, not the viewport
    small = img.resize((img.width // 4, img.height // 4))
    colours = small.getcolors(maxcolors=1 << 20)
    background = max(colours)[0] / (small.width * small.height)
    assert len(colours) > 200 and background < 0.9, (len(colours), background)  # not blank
