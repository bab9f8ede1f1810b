"""The static site in a real headless Chromium (selenium): no console errors, sortable columns,
images that load, links that open, from file:// with no server and no network.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``). Without them the tests are skipped, except under CI (env ``CI`` set), where
they fail. The screenshot of the leaderboard goes to ``$LOWBENCH_SCREENSHOT`` if set, else into
the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from site_fixtures import (
    MACHINE_A,
    MACHINE_B,
    MACHINE_ROWS,
    PAIRS,
    RUNTIME_ROWS,
    machine_spec,
    write_machines_store,
    write_runtime_store,
    write_store,
)

from lowbench.results.provenance import machine_id
from lowbench.site.build import build_site


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file()
                                      else None)
        if path:
            return path
    return None


CHROMIUM = _find("chromium", "chromium-browser", "google-chrome")
DRIVER = _find("chromedriver")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install them (apt-get install -y chromium "
                    "chromium-driver)")
    pytest.skip(f"{reason} (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser-site")
    write_store(tmp / "results", n_commits=3, n_machines=3, gallery_pairs=PAIRS[:1])
    build_site([tmp / "results"], tmp / "site")
    return tmp / "site"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    if CHROMIUM is None or DRIVER is None:
        _unavailable(f"chromium ({CHROMIUM or 'absent'}) or chromedriver ({DRIVER or 'absent'}) "
                     "not found")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def _open(driver, path: Path) -> list[dict]:
    """Load a page (waiting up to 10 s for it to finish loading: on a busy machine get() can
    return at "interactive"); the console messages it logged (SEVERE ones fail the caller)."""
    import time

    driver.get(path.as_uri())
    deadline = time.monotonic() + 10
    while (driver.execute_script("return document.readyState") != "complete"
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert driver.execute_script("return document.readyState") == "complete"
    return driver.get_log("browser")


def _severe(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e.get("level") == "SEVERE"]


def test_pages_load_without_console_errors(driver, site: Path) -> None:
    pages = ["index.html", "pareto.html", "history.html", "ablation.html", "gallery.html",
             "judge.html", "machines.html", "downloads.html"]
    pages += [next((site / d).glob("*.html")).relative_to(site).as_posix()
              for d in ("history", "variant", "machine")]
    for rel in pages:
        logs = _open(driver, site / rel)
        assert not _severe(logs), (rel, logs)
        assert driver.find_element("css selector", "h1").text


def _column(driver, table, col: int) -> list[str]:
    return [row.find_elements("css selector", "td")[col].get_attribute("data-v")
            for row in table.find_elements("css selector", "tbody tr")]


def test_click_header_sorts_rows(driver, site: Path) -> None:
    _open(driver, site / "index.html")
    table = driver.find_elements("css selector", "table.leaderboard")[-1]  # has n/a values
    headers = table.find_elements("css selector", "thead th")
    texts = [h.text for h in headers]
    col = next(i for i, t in enumerate(texts) if t.startswith("Latency median"))
    before = _column(driver, table, col)
    assert "" in before or len(set(before)) > 1
    headers[col].click()
    asc = _column(driver, table, col)
    nums = [float(v) for v in asc if v != ""]
    assert nums == sorted(nums) and len(nums) >= 10
    assert asc[len(nums):] == [""] * (len(asc) - len(nums))  # nulls last
    assert sorted(asc, key=str) == sorted(before, key=str)  # same rows, reordered
    assert headers[col].get_attribute("aria-sort") == "ascending"
    headers[col].click()
    desc = _column(driver, table, col)
    nums = [float(v) for v in desc if v != ""]
    assert nums == sorted(nums, reverse=True)
    assert desc[len(nums):] == [""] * (len(desc) - len(nums))  # nulls still last
    # rows move as a whole: the model cell follows its latency
    models = [r.find_elements("css selector", "td")[0].text
              for r in table.find_elements("css selector", "tbody tr")]
    assert models[0] == "sid"  # the slowest variant
    qcol = next(i for i, t in enumerate(texts) if t == "Model")
    headers[qcol].click()
    by_model = _column(driver, table, qcol)
    assert by_model == sorted(by_model)
    assert not _severe(driver.get_log("browser"))


def test_images_load(driver, site: Path) -> None:
    for rel in ("pareto.html", "gallery.html"):
        _open(driver, site / rel)
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)")
        assert widths and all(w > 0 for w in widths), (rel, widths)


def test_variant_page_opens_from_leaderboard_link(driver, site: Path) -> None:
    _open(driver, site / "index.html")
    link = driver.find_element("css selector", "table.leaderboard tbody tr td a")
    name = link.text
    link.click()
    assert "/variant/" in driver.current_url
    assert driver.find_element("css selector", "h1").text.startswith(f"{name} / ")
    assert driver.find_elements("css selector", "svg.chart")
    assert not _severe(driver.get_log("browser"))
    driver.find_element("link text", "Leaderboard").click()
    assert driver.current_url.endswith("/index.html")


def test_pages_fit_1280px_without_page_scrolling(driver, site: Path) -> None:
    """At a 1280 x 900 window no page scrolls sideways: the wide leaderboard and history tables
    wrap their headers and scroll inside their own box, never the page."""
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    size = driver.get_window_size()
    driver.set_window_size(1280, 900)
    try:
        too_wide = {}
        for rel in pages:
            _open(driver, site / rel)
            page, window = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert 1200 <= window <= 1280, window  # the window really is 1280 px wide
            if page > window:
                too_wide[rel] = page
        assert not too_wide, f"pages wider than the {window} px window: {too_wide}"
        # the leaderboard's table is still whole: every column is there, reachable by scrolling
        # its own box, and its first column (the model) stays in view while it scrolls
        _open(driver, site / "index.html")
        table = driver.find_elements("css selector", "table.leaderboard")[-1]
        assert len(table.find_elements("css selector", "thead th")) >= 15
        first = table.find_element("css selector", "tbody tr td")
        assert first.value_of_css_property("position") == "sticky"
    finally:
        driver.set_window_size(size["width"], size["height"])


def test_screenshot(driver, site: Path, tmp_path: Path) -> None:
    out = Path(os.environ.get("LOWBENCH_SCREENSHOT") or tmp_path / "leaderboard.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    _open(driver, site / "index.html")
    assert driver.save_screenshot(str(out))
    assert out.stat().st_size > 10_000
    print(f"screenshot: {out}")


@pytest.fixture(scope="module")
def runtime_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site with one table of three runtimes (eager torch, ONNX Runtime, OpenVINO)."""
    tmp = tmp_path_factory.mktemp("browser-runtime-site")
    write_runtime_store(tmp / "results")
    build_site([tmp / "results"], tmp / "site")
    return tmp / "site"


def test_runtime_filter_hides_rows(driver, runtime_site: Path) -> None:
    """Unchecking a runtime hides its rows of that table only (also after sorting); checking it
    again shows them; no console error, from file://."""
    assert not _severe(_open(driver, runtime_site / "index.html"))
    (box,) = driver.find_elements("css selector", "p.runtime-filter")
    table = driver.find_element("id", box.get_attribute("data-table"))
    rows = table.find_elements("css selector", "tbody tr")
    assert len(rows) == len(RUNTIME_ROWS)

    def visible() -> list[str]:
        return [r.get_attribute("data-runtime") for r in
                table.find_elements("css selector", "tbody tr") if r.is_displayed()]

    assert sorted(visible()) == sorted(["torch"] * 4 + ["onnxruntime"] * 2 + ["openvino"] * 2)
    assert "8 of 8 rows shown" in box.text
    box.find_element("css selector", "input[value=onnxruntime]").click()
    assert sorted(visible()) == sorted(["torch"] * 4 + ["openvino"] * 2)
    assert "6 of 8 rows shown" in box.text
    headers = table.find_elements("css selector", "thead th")
    next(h for h in headers if h.text.startswith("Latency median")).click()  # sort keeps it
    assert "onnxruntime" not in visible() and len(visible()) == 6
    box.find_element("css selector", "input[value=torch]").click()
    assert visible() == ["openvino", "openvino"]
    # the other tables (eager torch only; ONNX Runtime only) have no filter and stay whole
    others = [t for t in driver.find_elements("css selector", "table.leaderboard")
              if t.get_attribute("id") != table.get_attribute("id")]
    assert others and all(r.is_displayed() for t in others
                          for r in t.find_elements("css selector", "tbody tr"))
    box.find_element("css selector", "input[value=onnxruntime]").click()
    box.find_element("css selector", "input[value=torch]").click()
    assert len(visible()) == 8
    assert not _severe(driver.get_log("browser"))


@pytest.fixture(scope="module")
def machines_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The asymmetric machines store (site_fixtures.MACHINE_ROWS) with a third machine whose
    label tries to close the data's script element."""
    tmp = tmp_path_factory.mktemp("browser-machines-site")
    write_machines_store(tmp / "results", evil_label="Pi </script><b>4</b>")
    build_site([tmp / "results"], tmp / "site")
    return tmp / "site"


def test_reference_machine_select_recomputes_ratios(driver, machines_site: Path) -> None:
    """Choosing B as the reference rewrites every ratio as value / B's value (computed here from
    MACHINE_ROWS), the verdict classes and the reference marks; choosing A again restores the
    page as it was built (the script and the build write the same text)."""
    assert not _severe(_open(driver, machines_site / "machines.html"))
    a, b = (machine_id(machine_spec(i)["machine"]) for i in (MACHINE_A, MACHINE_B))
    table = driver.find_element("css selector", "table.compare[id^='cmp-compare-synth']")
    heads = table.find_elements("css selector", "thead tr")[1].find_elements("css selector",
                                                                            "th")
    titles = [th.get_attribute("title") for th in heads]  # the machines, once per metric
    n = len(titles) // len(table.find_elements("css selector", "thead tr")[0]
                           .find_elements("css selector", "th")[1:])
    machines = titles[:n]

    def latency(label: str) -> dict[str, tuple[str, str]]:
        row = next(r for r in table.find_elements("css selector", "tbody tr")
                   if r.find_element("css selector", "td").text == label)
        tds = row.find_elements("css selector", "td")[1:1 + n]
        return {m: (td.text, td.get_attribute("class"))
                for m, td in zip(machines, tds, strict=True)}

    def page_state() -> str:
        return table.get_attribute("innerHTML")

    select = driver.find_element("id", "cmp-select")
    assert select.is_displayed() and select.get_attribute("value") == a
    built = page_state()
    assert latency("sid / fp32")[b][0] == "200.0 ms · 2.00×"
    from selenium.webdriver.support.ui import Select

    Select(select).select_by_value(b)
    for (model, quant), per in MACHINE_ROWS.items():
        cells = latency(f"{model} / {quant}")
        for mi, (lat, _psnr) in per.items():
            text, cls = cells[machine_id(machine_spec(mi)["machine"])]
            ref = per.get(MACHINE_B)
            if ref is None:
                assert "×" not in text, text
            else:
                assert text.endswith(f" · {lat / ref[0]:.2f}×"), (model, quant, text)
    assert latency("sid / fp32")[a] == ("100.0 ms · 0.50×", "nowrap better")
    assert latency("sid / static")[a] == ("40.00 ms · 2.00×", "nowrap worse")
    assert latency("sid / fp32")[b][0] == "200.0 ms · 1.00×"
    ref_heads = [th.get_attribute("title") for th in heads if "ref" in th.get_attribute("class")]
    assert set(ref_heads) == {b}
    assert "(reference)" in heads[titles.index(b)].text
    assert driver.find_element("id", "cmp-reference-name").text == "Raspberry Pi 5"
    # the task only B ran now has a reference: its note is hidden, its cells 1.00x
    other = driver.find_element("css selector", "p.cmp-noref[data-table^='compare-other']")
    assert not other.is_displayed()
    Select(select).select_by_value(a)
    assert page_state() == built
    assert other.is_displayed()
    assert not _severe(driver.get_log("browser"))


def test_console_check_catches_errors(driver, tmp_path: Path) -> None:
    """The SEVERE filter really sees a script error (so a clean log above means something)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>notDefined();</script>")
    assert _severe(_open(driver, bad))


def test_judge_votes_by_keys_and_clicks_export_import_and_score(driver, site: Path,
                                                                tmp_path: Path) -> None:
    """The Judge page in a real browser: three votes by keys and one by a click, names hidden
    until the vote, a pixel-exact zoom, the exported file, `lowbench votes import` and the human
    score on the rebuilt page (same results: same build)."""
    import json
    import time

    from cli_helpers import lowbench

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    _open(driver, site / "judge.html")
    driver.execute_script("localStorage.clear()")
    logs = _open(driver, site / "judge.html")
    assert not _severe(logs), logs
    manifest = json.loads((site / "data" / "judge.json").read_text())
    labels = {o["variant"] for s in manifest["scenes"] for o in s["outputs"]}
    page_text = driver.find_element("id", "judge").text
    assert not any(label in page_text for label in labels)  # hidden before the vote
    body = driver.find_element("css selector", "body")
    truth = driver.find_element("id", "judge-truth-box")
    assert not truth.is_displayed()  # the ground truth on demand only
    body.send_keys("t")
    assert truth.is_displayed()
    body.send_keys("t")
    assert not truth.is_displayed()
    shown = []
    for action in ("\ue012", "\ue014", "=", "click"):  # ArrowLeft, ArrowRight, =, a click
        shown.append((driver.find_element("id", "judge-left").get_attribute("src"),
                      driver.find_element("id", "judge-right").get_attribute("src")))
        if action == "click":
            driver.find_element("id", "judge-vote-right").click()
        else:
            body.send_keys(action)
    assert "left was" in driver.find_element("id", "judge-last").text  # revealed after it
    body.send_keys("z")
    img = driver.find_element("id", "judge-left")
    natural = driver.execute_script("return arguments[0].naturalWidth", img)
    assert natural > 0
    assert driver.execute_script("return arguments[0].clientWidth", img) == 2 * natural
    assert img.value_of_css_property("image-rendering") == "pixelated"
    driver.find_element("id", "judge-export").click()
    deadline = time.monotonic() + 15
    while not list(downloads.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (exported,) = downloads.glob("lowbench-votes-*.json")
    doc = json.loads(exported.read_text())
    assert doc["build_id"] == manifest["build_id"]
    assert [v["outcome"] for v in doc["votes"]] == ["left", "right", "tie", "right"]
    assert [site.as_uri() + "/" + v["left"] for v in doc["votes"]] == [s[0] for s in shown]
    store = tmp_path / "store"
    proc = lowbench("votes", "import", str(exported), "--site", str(site), "--out", str(store))
    assert proc.returncode == 0, proc.stderr
    again = tmp_path / "site-again"
    build_site([site.parent / "results", store], again)
    assert json.loads((again / "data" / "judge.json").read_text())["build_id"] == \
        manifest["build_id"]
    _open(driver, again / "judge.html")
    rows = driver.find_elements("css selector", "table tbody tr")
    assert len(rows) >= 2 and driver.find_elements("id", "judge-no-votes") == []
    votes = sum(int(r.find_elements("css selector", "td")[4].text) for r in rows)
    assert votes == 2 * 4  # every vote counts for both of its variants
    dots = driver.find_elements("css selector", "#judge-scatter circle")
    assert len(dots) == len(rows)  # one per variant: human score against PSNR
