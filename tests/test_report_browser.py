"""report.html in a real browser (headless Chromium), and whole table cells in the report.

The browser tests open a report in headless Chromium with a small script added to a copy of the
page (the report itself has no scripts) and read the script's findings back from the DOM that
``--dump-dom`` prints: every ``<img>`` decodes (complete, ``naturalWidth > 0``, and it draws
onto a canvas), every in-page link of the table of contents (and of the rest of the page) lands on an
element id, and nothing reaches the console (errors, failed resource loads, uncaught exceptions;
also every ``CONSOLE`` line Chromium logs on stderr). Two reports: a tiny one built here from an
executed notebook written in ``tmp_path`` (a matplotlib figure as PNG and SVG, a pandas table,
headings for the table of contents, an in-page markdown link), and the smoke run's, re-rendered
from ``outputs/smoke/executed`` when a smoke run is there (``make smoke``).

Chromium: ``$ACCELNAS_CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on
PATH; ``.ci/run`` installs Debian's ``chromium`` when it is missing. Without one these tests skip.

Whole cells: pandas cuts cell text at 50 characters by default, and report.html keeps the
notebooks' HTML tables as rendered in the kernel, so `accelnas.run.open_run` (every notebook's
first call) sets ``display.max_colwidth`` to None; the first two tests need no browser.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from accelnas.report.html import build_html, render_report
from accelnas.run import open_run

REPO = Path(__file__).resolve().parents[1]
SMOKE_PARAMS = REPO / "params" / "smoke.yaml"
SMOKE_RUN = REPO / "outputs" / "smoke"

#: 120 characters in one cell (pandas' default would show 47 and "...").
LONG_TEXT = ("Gupta & Akin 2020 excluded swish and squeeze-excite for the Edge TPU (ReLU, no SE): "
             "they map poorly or off the accelerator")[:120].ljust(120, ".")
assert len(LONG_TEXT) == 120

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER_TIMEOUT_S = 120
RESULT_ID = "accelnas-browser-check"

#: First thing in <head>: records errors before the page's own content can raise them.
_CAPTURE_JS = """<script>
window.__accelnasErrors = [];
addEventListener('error', function (e) {
  var t = e.target;
  window.__accelnasErrors.push(t && t !== window && t.tagName
    ? 'failed to load <' + t.tagName.toLowerCase() + '> '
      + String(t.getAttribute('src') || t.getAttribute('href') || '').slice(0, 80)
    : 'uncaught: ' + e.message);
}, true);
addEventListener('unhandledrejection', function (e) {
  window.__accelnasErrors.push('unhandled rejection: ' + String(e.reason));
});
addEventListener('securitypolicyviolation', function (e) {
  window.__accelnasErrors.push('blocked by policy: ' + e.blockedURI);
});
(function () {
  var orig = console.error;
  console.error = function () {
    window.__accelnasErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return orig.apply(console, arguments);
  };
})();
</script>"""

#: Last thing in <body>: on load (every image has loaded or failed by then), checks images and links
#: and writes the findings as JSON. Synchronous on purpose: --dump-dom does not wait for promises.
#: An image counts as decoded when it is complete, has a natural size and draws onto a canvas
#: (drawImage decodes it, and throws for a broken image).
_CHECK_JS = """<script>
addEventListener('load', function () {
  var r = {images: [], links: [], cells: [], errors: null};
  var ctx = document.createElement('canvas').getContext('2d');
  Array.from(document.images).forEach(function (img) {
    var drawn = true, why = '';
    try { ctx.drawImage(img, 0, 0, 1, 1); } catch (e) { drawn = false; why = String(e); }
    r.images.push({src: String(img.getAttribute('src') || '').slice(0, 40), complete: img.complete,
                   naturalWidth: img.naturalWidth, decoded: drawn, why: why});
  });
  Array.from(document.querySelectorAll('a[href^="#"]')).forEach(function (a) {
    var href = a.getAttribute('href'), raw = href.slice(1), decoded = raw;
    try { decoded = decodeURIComponent(raw); } catch (e) {}
    // as the HTML spec finds a fragment's target: the raw id first, then the percent-decoded one
    var ok = raw !== '' && !!(document.getElementById(raw) || document.getElementById(decoded));
    r.links.push({href: href, toc: !!a.closest('nav.toc'), ok: ok});
  });
  r.cells = Array.from(document.querySelectorAll('table.dataframe td')).map(function (td) {
    return td.textContent; });
  r.errors = window.__accelnasErrors;
  var out = document.createElement('pre');
  out.id = '%s';
  out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
});
</script>""" % RESULT_ID


# ---------------------------------------------------------------------------------------------
# whole cells (no browser)

@pytest.fixture
def pandas_options():
    """open_run sets a pandas option for the whole process: start from pandas' default (50) whatever
    ran before, and put the option back after the test."""
    before = pd.get_option("display.max_colwidth")
    pd.set_option("display.max_colwidth", 50)
    yield
    pd.set_option("display.max_colwidth", before)


def test_open_run_shows_whole_cells(tmp_path, pandas_options):
    df = pd.DataFrame({"model": ["mobilenet_edgetpu"], "reason": [LONG_TEXT]})
    assert LONG_TEXT not in df._repr_html_() and "..." in df._repr_html_()  # the default cut
    open_run(SMOKE_PARAMS, tmp_path / "run", notebook="01")
    assert pd.get_option("display.max_colwidth") is None
    assert f"<td>{html.escape(LONG_TEXT)}</td>" in df._repr_html_()
    assert LONG_TEXT in df.to_string()


def test_report_keeps_whole_cells(tmp_path, pandas_options):
    run_dir = _tiny_run(tmp_path)
    page = build_html(run_dir)
    assert html.escape(LONG_TEXT) in page
    assert html.escape(LONG_TEXT[:47]) + "..." not in page


# ---------------------------------------------------------------------------------------------
# the browser

def _chromium() -> str | None:
    env = os.environ.get("ACCELNAS_CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium found (set ACCELNAS_CHROMIUM or install Debian's `chromium`, as "
                    ".ci/run does): the browser checks of report.html did not run")
    try:
        probe = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"{exe} does not start ({e}): the browser checks of report.html did not run")
    if probe.returncode != 0:
        pytest.skip(f"{exe} --version failed ({(probe.stderr or probe.stdout).strip()[-200:]}): "
                    "the browser checks of report.html did not run")
    return exe


def _tiny_run(tmp_path: Path) -> Path:
    """A run folder with one executed notebook: headings, a PNG and an SVG figure, a table with a
    120-character cell rendered after open_run, a stdout stream and an in-page link."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), dpi=72)
    ax = fig.subplots()
    ax.plot([1, 2, 3], [3.1, 5.2, 4.0], marker="o")
    ax.set_xlabel("latency (ms)")
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg")
    png_b64 = base64.b64encode(png.getvalue()).decode("ascii")

    run_dir = tmp_path / "tiny"
    open_run(SMOKE_PARAMS, run_dir, notebook="05")  # as a notebook's first cell does
    df = pd.DataFrame({"model": ["efficientnet_edgetpu_s", "mobilenet_v2"],
                       "latency_ms": [5.1, 2.6], "note": [LONG_TEXT, "short"]})

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    out = nbformat.v4.new_output
    nb.cells = [
        md("# 05 · A tiny report\n\nFigures and a table; [jump to the table](#The-table)."),
        md("## A figure"),
        code("fig", outputs=[out("display_data", data={"image/png": png_b64,
                                                       "text/plain": "<Figure>"})]),
        code("fig_svg", outputs=[out("display_data", data={"image/svg+xml": svg.getvalue(),
                                                           "text/plain": "<Figure>"})]),
        md("## The table"),
        code("df", execution_count=3, outputs=[out("execute_result", execution_count=3, data={
            "text/html": df._repr_html_(), "text/plain": df.to_string()})]),
        md("## Printed text"),
        code("print(...)", outputs=[out("stream", name="stdout", text="done: 2 models\n")]),
    ]
    (run_dir / "executed").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, run_dir / "executed" / "05_tiny_report.ipynb")
    (run_dir / "manifest.json").write_text(json.dumps({
        "run_name": "tiny", "status": "ok",
        "notebooks": [{"name": "05_tiny_report", "status": "ok", "wall_s": 1.5}]}))
    return run_dir


@pytest.fixture(params=["tiny", "smoke"])
def report(request, tmp_path, pandas_options) -> tuple[str, Path]:
    if request.param == "tiny":
        return "tiny", render_report(_tiny_run(tmp_path), output=tmp_path / "tiny.html")
    if any((SMOKE_RUN / "executed").glob("*.ipynb")):  # current renderer on the smoke notebooks
        return "smoke", render_report(SMOKE_RUN, output=tmp_path / "smoke.html")
    if (SMOKE_RUN / "report.html").is_file():
        return "smoke", SMOKE_RUN / "report.html"
    pytest.skip(f"no smoke run in {SMOKE_RUN} (make smoke): only the tiny report was opened")


def _open_in_browser(exe: str, page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Load a copy of ``page`` with the check scripts; returns the findings and the console lines
    Chromium logged."""
    text = page.read_text(encoding="utf-8")
    head, body_end = text.find("<head>"), text.rfind("</body>")
    assert head >= 0 and body_end > head, f"{page}: no <head> or </body>"
    head += len("<head>")
    checked = tmp_path / f"checked-{page.name}"
    checked.write_text(text[:head] + _CAPTURE_JS + text[head:body_end] + _CHECK_JS
                       + text[body_end:], encoding="utf-8")
    cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S,
                              errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish loading {page} in {BROWSER_TIMEOUT_S} s")
    m = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert m, (f"the check script left no result in the DOM (Chromium exit {proc.returncode}); "
               f"stderr tail:\n{proc.stderr[-2000:]}")
    console = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]
    return json.loads(html.unescape(m.group(1))), console


def test_report_in_chromium(chromium, report, tmp_path):
    kind, page = report
    found, console = _open_in_browser(chromium, page, tmp_path)

    images = found["images"]
    assert images, f"{kind}: no <img> on the page"
    bad = [i for i in images if not (i["complete"] and i["naturalWidth"] > 0 and i["decoded"])]
    assert not bad, f"{kind}: {len(bad)} of {len(images)} images did not decode: {bad[:5]}"

    toc = [a for a in found["links"] if a["toc"]]
    assert len(toc) >= 2, f"{kind}: the table of contents has {len(toc)} in-page links"
    broken = [a["href"] for a in found["links"] if not a["ok"]]
    assert not broken, (f"{kind}: in-page links without a target id "
                        f"({sum(not a['ok'] for a in toc)} of {len(toc)} in the table of contents): "
                        f"{broken[:10]}")

    assert not found["errors"], f"{kind}: errors in the page: {found['errors'][:10]}"
    assert not console, f"{kind}: Chromium logged console messages: {console[:10]}"

    if kind == "tiny":
        assert any(a["toc"] and a["href"].endswith("The-table") for a in found["links"])
        assert LONG_TEXT in found["cells"], "the 120-character cell is cut in the browser"
        assert len(images) == 2


def test_browser_check_catches_a_broken_page(chromium, tmp_path):
    """The checks are not vacuous: a broken image, a dangling link and a console error are seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
        '<nav class="toc"><a href="#here">here</a> <a href="#nowhere">nowhere</a></nav>'
        '<h2 id="here">here</h2><img src="data:image/png;base64,AAAA" alt="broken">'
        '<img src="missing.png" alt="missing"><script>console.error("boom")</script>'
        "</body></html>", encoding="utf-8")
    found, console = _open_in_browser(chromium, page, tmp_path)
    assert [i["decoded"] or i["naturalWidth"] > 0 for i in found["images"]] == [False, False]
    assert [(a["href"], a["ok"]) for a in found["links"]] == [("#here", True), ("#nowhere", False)]
    assert any("boom" in e for e in found["errors"])
    assert any("missing.png" in e for e in found["errors"])
    assert any("boom" in line for line in console)
