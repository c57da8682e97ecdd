"""The static web leaderboard: its data and links (no browser), then the page itself in a
real headless Chromium driven by selenium (skipped with a message where either is missing)."""
from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from bench.report.leaderboard import build
from bench.report.render import fmt_interval
from bench.report.site import site_data, write_site

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "results"
CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def leaderboard():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures' unreadable files are on purpose
        return build(FIXTURES, n_boot=200)


@pytest.fixture(scope="module")
def page(leaderboard, tmp_path_factory):
    return write_site(leaderboard, tmp_path_factory.mktemp("site"), generated="2025-01-01T00:00:00Z")


def _payload(page: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    raw = re.search(r'<script id="leaderboard-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


def test_page_is_self_contained_and_links_every_result(leaderboard, page):
    html = page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no CDN, no network
    data = _payload(page)
    assert data == json.loads(json.dumps(site_data(leaderboard, page.parent)))
    assert len(data["entries"]) == len(leaderboard.entries) == 8
    for entry, e in zip(data["entries"], leaderboard.entries):
        assert (page.parent / entry["result"]).resolve() == e.run.path.resolve()
        assert not entry["result"].startswith("/")  # relative link
    assert {s["key"]: s["help"] for s in data["specs"]} == {k: s.help for k, s in leaderboard.specs.items()}


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_in_headless_chromium(browser, leaderboard, page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    errors = [m for m in browser.get_log("browser") if m["level"] == "SEVERE"] if hasattr(browser, "get_log") else []
    assert not errors, errors

    def column(head: str) -> list[str]:
        heads = [th.text.rstrip(" ▲▼") for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")]
        i = heads.index(head)
        rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr") if r.is_displayed()]
        return [r.find_elements(By.TAG_NAME, "td")[i].get_attribute("data-sort") for r in rows]

    # sort by bias reduction: ascending, then descending on a second click (a baseline is its own reference: 0)
    header = next(th for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")
                  if th.text.startswith("bias reduction"))
    expected = sorted(0.0 if e.base is None else e.bias.est for e in leaderboard.entries)
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    values = column("bias reduction, pts (↑)")
    assert [float(v) for v in values] == pytest.approx(expected)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert [float(v) for v in column("bias reduction, pts (↑)")] == pytest.approx(expected[::-1])

    # filter by model, then by method substring
    Select(browser.find_element(By.ID, "model-filter")).select_by_value("tiny-random")
    shown = [r for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr") if r.is_displayed()]
    n_tiny = sum(e.run.model == "tiny-random" for e in leaderboard.entries)
    assert len(shown) == n_tiny == 4
    assert {r.get_attribute("data-model") for r in shown} == {"tiny-random"}
    assert browser.find_element(By.ID, "row-count").text == f"{n_tiny} of 8 runs"
    browser.find_element(By.ID, "method-filter").send_keys("inlp")
    assert len([r for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr") if r.is_displayed()]) == 1
    browser.find_element(By.ID, "method-filter").clear()
    Select(browser.find_element(By.ID, "model-filter")).select_by_value("")

    # metric help as the column header's tooltip
    ss = next(th for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")
              if (th.get_attribute("title") or "").startswith("stereoset/ss ("))
    assert leaderboard.specs["stereoset/ss"].help in ss.get_attribute("title")

    # hover a point: its tooltip shows method, model and the intervals formatted as in leaderboard.md
    entry = leaderboard.entry("smollm2-135m", "cda")
    point = browser.find_element(By.CSS_SELECTOR, 'path.point[data-model="smollm2-135m"][data-label="cda/gender"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    ActionChains(browser).move_to_element(point).perform()
    tooltip = browser.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed()
    text = tooltip.text
    assert "cda/gender" in text and "smollm2-135m" in text
    assert f"bias reduction: {fmt_interval(entry.bias)} pts" in text
    assert f"capability change: {fmt_interval(entry.capability)} %" in text
    (tmp_path / "tooltip.txt").write_text(text)
    browser.save_screenshot(str(tmp_path / "leaderboard.png"))

    # click it: the run's metrics; toggling a model hides its points
    point.click()
    details = browser.find_element(By.ID, "details")
    assert details.is_displayed() and "smollm2-135m / cda/gender" in details.text
    assert len(details.find_elements(By.CSS_SELECTOR, "table.details tr")) == 1 + len(
        [k for k in leaderboard.specs if isinstance(entry.run.metrics.get(k), (int, float))])
    browser.find_element(By.CSS_SELECTOR, '#legend input[data-model="tiny-random"]').click()
    tiny = browser.find_elements(By.CSS_SELECTOR, 'path.point[data-model="tiny-random"]')
    assert tiny and not any(p.is_displayed() for p in tiny)
    assert all(p.is_displayed() for p in browser.find_elements(By.CSS_SELECTOR, 'path.point[data-model="smollm2-135m"]'))
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'leaderboard.png'}\ntooltip: {text!r}")
