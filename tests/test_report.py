"""report.html: one offline page from a run's executed notebooks (no kernels except one runner test)."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pytest

from accelnas import cli, runner
from accelnas.report import html as report
from accelnas.report.html import ReportError, find_remote_resources, render_report

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"

# a 1x1 PNG
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
TABLE_HTML = ('<div><style scoped>.dataframe thead th { text-align: right; }</style>'
              '<table border="1" class="dataframe"><thead><tr><th></th><th>latency_ms</th></tr>'
              '</thead><tbody><tr><th>0</th><td>4.217</td></tr></tbody></table></div>')
HOSTILE_HTML = ('<script src="https://cdn.example.com/require.js"></script>'
                '<link rel="stylesheet" href="https://cdn.example.com/x.css">'
                '<style>@import url("https://fonts.example.com/f.css"); '
                '.x { background: url(http://example.com/bg.png) }</style>'
                '<img src="http://example.com/remote.png" alt="remote">'
                '<iframe src="//example.com/frame"></iframe>'
                '<p>see <a href="https://example.com/docs">the docs</a></p>')
REMOTE = re.compile(r"<(?!a[\s>])[a-z][\w:-]*[^>]*\s(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//"
                    r"|@import\s+url\(\s*[\"']?https?:", re.IGNORECASE)
ANSI_TB = ["\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
           "\x1b[0;31mValueError\x1b[0m                                Traceback (most recent call last)",
           "Cell \x1b[0;32mIn[3], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m \x1b[38;5;28;01mraise\x1b[39;00m "
           "\x1b[38;5;167;01mValueError\x1b[39;00m(\x1b[38;5;124m'\x1b[39m\x1b[38;5;124mboom 42\x1b[39m')",
           "\x1b[0;31mValueError\x1b[0m: boom 42"]


def code(source: str, *outputs, count: int = 1, **kw):
    cell = nbformat.v4.new_code_cell(source, execution_count=count, **kw)
    cell.outputs = list(outputs)
    return cell


def write_nb(path: Path, *cells, duration: float | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if duration is not None:
        nb.metadata["papermill"] = {"duration": duration, "input_path": str(path)}
    nb.cells = list(cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def ok_notebook(path: Path, title: str, marker: str) -> Path:
    out = nbformat.v4.new_output
    return write_nb(
        path,
        nbformat.v4.new_markdown_cell(f"# {title}\n\nIntro with a [paper](https://arxiv.org/abs/2003.02838)."),
        code(f"params_file = ''\nrun_dir = ''  # {marker}_PARAMS", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## Section A\nText of section A."),
        code(f"print('hello {marker}')  # {marker}_SOURCE",
             out("stream", name="stdout",
                 text="\x1b[1mbold\x1b[0m line\nprogress 10%\rprogress 50%\rprogress 100%\n"),
             out("stream", name="stderr",
                 text="WARNING: All log messages before absl::InitializeLog() is called are "
                      "written to STDERR\nI0000 00:00:1795246231.757024   25723 port.cc:153] "
                      "oneDNN custom operations are on.\n/x/y.py:12: UserWarning: fewer samples "
                      f"than asked ({marker})\n  warnings.warn(msg)\n")),
        code("plot()", out("display_data", data={"image/png": PNG_B64, "text/plain": "<Figure>"})),
        code("frame", out("execute_result", execution_count=4,
                          data={"text/html": TABLE_HTML, "text/plain": "   latency_ms\n0  4.217"})),
        code("HTML(hostile)", out("display_data", data={"text/html": HOSTILE_HTML})),
        code("display(Markdown(...))",
             out("display_data", data={"text/markdown": f"**answer {marker}**", "text/plain": "x"})),
        duration=1.25,
    )


def manifest(run_dir: Path, notebooks: list[dict], status: str = "ok", **extra) -> dict:
    m = {"run_name": "unit", "status": status, "started": "2026-01-01T10:00:00+00:00",
         "finished": "2026-01-01T10:05:00+00:00", "params_file": "/repo/params/unit.yaml",
         "overrides": {"seed": 3}, "only": None, "params": {"run_name": "unit", "seed": 3},
         "git": {"revision": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
         "python": "3.11.7", "platform": "Linux-x86_64", "kernel": "python3",
         "packages": {"papermill": "2.7.0", "tensorflow": None}, "notebooks": notebooks, **extra}
    (run_dir / "manifest.json").write_text(json.dumps(m))
    return m


def entry(name: str, status: str = "ok", wall_s: float | None = 1.5, error=None) -> dict:
    return {"name": name, "status": status, "wall_s": wall_s, "error": error}


def internal_links_resolve(page: str) -> None:
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    targets = set(re.findall(r'\shref="#([^"]+)"', page))
    assert targets and not targets - ids, sorted(targets - ids)
    assert len(re.findall(r'\sid="([^"]+)"', page)) == len(ids), "duplicate ids"


@pytest.fixture
def ok_run(tmp_path) -> Path:
    run_dir = tmp_path / "unit"
    ok_notebook(run_dir / "executed" / "01_first.ipynb", "01 · First notebook", "ONE")
    ok_notebook(run_dir / "executed" / "02_second.ipynb", "02 · Second notebook", "TWO")
    manifest(run_dir, [entry("01_first", wall_s=1.5), entry("02_second", wall_s=75.0)])
    return run_dir


# ---------------------------------------------------------------------------------------------

def test_report_is_one_offline_page_of_the_notebooks(ok_run):
    path = render_report(ok_run)
    assert path == ok_run / "report.html" and path.is_file()
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>accelnas report: unit</title>" in page

    # markdown, outputs and order
    assert "01 · First notebook" in page.replace("&#183;", "·")
    assert page.index('id="nb-01_first"') < page.index('id="nb-02_second"')
    assert "Text of section A." in page and "<strong>answer ONE</strong>" in page
    assert page.count(f'<img src="data:image/png;base64,{PNG_B64}"') == 2
    assert '<table border="1" class="dataframe">' in page and "4.217" in page
    # code hidden
    for marker in ("ONE_SOURCE", "TWO_SOURCE", "ONE_PARAMS", "plot()", "HTML(hostile)"):
        assert marker not in page
    # streams: ANSI stripped, progress collapsed, stderr noise dropped, warnings kept
    assert "\x1b" not in page and "bold line" in page
    assert "progress 100%" in page and "progress 10%" not in page
    assert "absl::InitializeLog" not in page and "oneDNN" not in page
    assert "UserWarning: fewer samples than asked (ONE)" in page
    # nothing remote is fetched; plain links stay links
    assert not REMOTE.search(page), REMOTE.search(page).group(0)
    assert find_remote_resources(page) == []
    assert find_remote_resources(report.neutralize_remote("x")) == []
    assert len(find_remote_resources('<script src="https://a/b.js"></script><a href="https://x">')) == 1
    assert '<a href="https://arxiv.org/abs/2003.02838">paper</a>' in page
    assert '<a href="https://example.com/docs">the docs</a>' in page
    assert "<script" in page and 'data-remote-src="https://cdn.example.com/require.js"' in page

    # table of contents: each notebook section and its headings; every in-page link resolves
    toc = page[page.index('<nav class="toc">'):page.index("</nav>")]
    assert 'href="#nb-01_first"' in toc and 'href="#nb-02_second"' in toc
    assert 'href="#nb-01_first-Section-A"' in toc and 'href="#nb-02_second-Section-A"' in toc
    internal_links_resolve(page)

    # header from the manifest
    header = page[page.index("<header>"):page.index("</header>")]
    for text in ("/repo/params/unit.yaml", "0123456789abcdef0123456789abcdef01234567", "1.5 s",
                 "1 min 15 s", "papermill&nbsp;2.7.0", "seed=3", "Python 3.11.7"):
        assert text in header, text
    assert "tensorflow" not in header  # not installed: not listed


def test_failing_notebook_is_marked_and_later_ones_listed_as_not_run(tmp_path):
    run_dir = tmp_path / "unit"
    ok_notebook(run_dir / "executed" / "01_ok.ipynb", "01 · Fine", "ONE")
    out = nbformat.v4.new_output
    write_nb(
        run_dir / "executed" / "02_broken.ipynb",
        nbformat.v4.new_markdown_cell(
            "<span style=\"color:red; font-size:2em;\">An Exception was encountered at "
            "'<a href=\"#papermill-error-cell\">In [3]</a>'.</span>",
            metadata={"tags": ["papermill-error-cell-tag"]}),
        nbformat.v4.new_markdown_cell("# 02 · Broken\n## Before the error"),
        code("x = 1", out("stream", name="stdout", text="computed x\n"), count=2),
        nbformat.v4.new_markdown_cell(
            '<span id="papermill-error-cell" style="color:red;">Execution using papermill '
            "encountered an exception here and stopped:</span>",
            metadata={"tags": ["papermill-error-cell-tag"]}),
        code("raise ValueError('boom 42')",
             out("error", ename="ValueError", evalue="boom 42", traceback=ANSI_TB), count=3),
        code("after()", count=None),
    )
    manifest(run_dir, [entry("01_ok"),
                       entry("02_broken", "failed", 2.0,
                             {"ename": "ValueError", "evalue": "boom 42", "cell": 3}),
                       entry("03_never", "pending", None)],
             status="failed", failed_notebook="02_broken")

    page = render_report(run_dir).read_text(encoding="utf-8")
    section = page[page.index('<section id="nb-02_broken"'):]
    section = section[:section.index("</section>")]
    assert 'class="notebook failed"' in section
    assert "This notebook failed: cell [3]: ValueError: boom 42" in section
    assert "computed x" in section and "ValueError: boom 42" in section
    assert 'id="nb-02_broken-error"' in section
    assert section.index("Execution stopped here") < section.index("boom 42</pre>")
    assert "An Exception was encountered" not in page  # papermill's banner replaced by ours
    assert "\x1b" not in page and "Traceback (most recent call last)" in section
    toc = page[page.index('<nav class="toc">'):page.index("</nav>")]
    assert re.search(r'href="#nb-02_broken">.*?<span class="badge failed">failed</span>', toc)
    header = page[page.index("<header>"):page.index("</header>")]
    assert '<span class="badge failed">failed</span> at notebook <code>02_broken</code>' in header
    assert re.search(r"03_never</td><td><span class=\"badge pending\">not run</span>", header)
    assert '<a href="#nb-02_broken-error">cell [3]: ValueError: boom 42</a>' in header
    assert "01 · Fine" in page.replace("&#183;", "·")  # the finished work is all there
    internal_links_resolve(page)
    assert not REMOTE.search(page)


def test_error_output_without_manifest_still_marks_the_notebook(tmp_path):
    run_dir = tmp_path / "bare"
    write_nb(run_dir / "executed" / "01_x.ipynb",
             code("boom()", nbformat.v4.new_output("error", ename="KeyError", evalue="'k'",
                                                   traceback=["KeyError: 'k'"])))
    page = render_report(run_dir).read_text()
    assert "none found in" in page and "accelnas report: bare" in page
    assert 'class="notebook failed"' in page and "This notebook failed: KeyError: &#x27;k&#x27;" in page
    internal_links_resolve(page)


def test_notebooks_of_an_earlier_run_and_unreadable_ones(tmp_path):
    run_dir = tmp_path / "unit"
    ok_notebook(run_dir / "executed" / "01_first.ipynb", "01 · Earlier", "ONE")
    ok_notebook(run_dir / "executed" / "02_second.ipynb", "02 · Rerun", "TWO")
    (run_dir / "executed" / "03_bad.ipynb").write_text("{not json")
    manifest(run_dir, [entry("02_second")], only=["2"])
    page = render_report(run_dir).read_text()
    first = page[page.index('<section id="nb-01_first"'):page.index('<section id="nb-02_second"')]
    assert "Executed by an earlier run" in first
    assert "Executed by an earlier run" not in page[page.index('<section id="nb-02_second"'):]
    assert '<section id="nb-03_bad" class="notebook failed">' in page and "could not read" in page


def test_no_executed_notebooks_is_a_clear_error(tmp_path):
    (tmp_path / "run" / "executed").mkdir(parents=True)
    with pytest.raises(ReportError, match=re.escape(str(tmp_path / "run" / "executed"))):
        render_report(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        render_report(tmp_path / "missing")
    assert not (tmp_path / "run" / "report.html").exists()


def test_local_and_attached_markdown_images_are_embedded(tmp_path):
    run_dir = tmp_path / "unit"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "figures" / "f.png").write_bytes(base64.b64decode(PNG_B64))
    md = nbformat.v4.new_markdown_cell("![local](figures/f.png) ![att](attachment:a.png) "
                                       "![remote](https://example.com/r.png)")
    md.attachments = {"a.png": {"image/png": PNG_B64}}
    write_nb(run_dir / "executed" / "01_img.ipynb", md)
    page = render_report(run_dir).read_text()
    assert page.count(f'src="data:image/png;base64,{PNG_B64}"') == 2
    assert not REMOTE.search(page) and 'data-remote-src="https://example.com/r.png"' in page


def test_clean_stream_and_stderr_policy():
    assert report.clean_stream("a\x1b[31mred\x1b[0m\n1/3\r2/3\r3/3\nab\bc") == "ared\n3/3\nac"
    long = "\n".join(str(i) for i in range(1000))
    kept = report.clean_stream(long, keep_lines=5).splitlines()
    assert kept[:5] == ["0", "1", "2", "3", "4"] and kept[-1] == "999" and "990 lines omitted" in kept[5]
    assert report.stderr_warnings("W0000 00:00 x] tf noise\nfoo.py:3: DeprecationWarning: old\n"
                                  "foo.py:3: DeprecationWarning: old\n 50%|##   | 1/2\r") == [
        "foo.py:3: DeprecationWarning: old"]


def test_cli_report(ok_run, tmp_path, capsys):
    assert cli.main(["report", str(ok_run)]) == 0
    assert capsys.readouterr().out.strip() == str(ok_run / "report.html")
    assert (ok_run / "report.html").is_file()
    other = tmp_path / "elsewhere.html"
    assert cli.main(["report", str(ok_run), "-o", str(other)]) == 0 and other.is_file()
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("accelnas: error: ") and "nowhere" in err[0]


# ---------------------------------------------------------------------------------------------
# the runner renders the report when it ends

@pytest.fixture
def smoke_params():
    if not SMOKE.is_file():
        pytest.skip(f"{SMOKE} not present")
    return SMOKE


def _src_notebook(path: Path, text: str) -> Path:
    return write_nb(path, nbformat.v4.new_markdown_cell(f"# {text}"),
                    code("params_file = ''\nrun_dir = ''\nseed = 0\noverrides = {}", count=None,
                         metadata={"tags": ["parameters"]}))


@pytest.fixture
def fake_papermill(monkeypatch):
    """papermill.execute_notebook without a kernel: copies the notebook, adds a stdout output;
    a notebook whose name contains 'broken' gets an error output and raises like papermill."""
    import papermill

    def execute(src, dst, **kwargs):
        nb = nbformat.read(src, as_version=4)
        cell = nb.cells[-1]
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"ran {Path(src).stem}\n")]
        if "broken" in src:
            cell.outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom",
                                                       traceback=["ValueError: boom"]))
        nbformat.write(nb, dst)
        if "broken" in src:
            raise papermill.PapermillExecutionError(1, 1, "", "ValueError", "boom", [])
        return nb

    monkeypatch.setattr(papermill, "execute_notebook", execute)


def test_runner_writes_the_report_and_records_it(tmp_path, smoke_params, fake_papermill):
    nbs = tmp_path / "nbs"
    _src_notebook(nbs / "01_a.ipynb", "Notebook A")
    _src_notebook(nbs / "02_b.ipynb", "Notebook B")
    lines = []
    run_dir = runner.run(smoke_params, notebooks_dir=nbs, outputs_root=tmp_path / "out",
                         log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "ok" and m["report"] == str(run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    assert "Notebook A" in page and "ran 02_b" in page and '<span class="badge ok">ok</span>' in page
    assert f"report: {run_dir / 'report.html'}" in lines


def test_runner_reports_the_finished_work_of_a_failed_run(tmp_path, smoke_params, fake_papermill):
    nbs = tmp_path / "nbs"
    _src_notebook(nbs / "01_a.ipynb", "Notebook A")
    _src_notebook(nbs / "02_broken.ipynb", "Notebook broken")
    _src_notebook(nbs / "03_c.ipynb", "Notebook C")
    with pytest.raises(runner.NotebookFailed) as info:
        runner.run(smoke_params, notebooks_dir=nbs, outputs_root=tmp_path / "out", log=None)
    run_dir = info.value.executed_path.parents[1]
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "failed" and m["report"] == str(run_dir / "report.html")
    page = (run_dir / "report.html").read_text()
    assert "ran 01_a" in page and 'class="notebook failed"' in page and "ValueError: boom" in page
    assert re.search(r"03_c</td><td><span class=\"badge pending\">not run", page)


def test_a_report_failure_only_warns(tmp_path, smoke_params, fake_papermill, monkeypatch):
    def broken_render(run_dir, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(report, "render_report", broken_render)
    nbs = tmp_path / "nbs"
    _src_notebook(nbs / "01_a.ipynb", "Notebook A")
    with pytest.warns(RuntimeWarning, match="report.html not written.*renderer exploded"):
        run_dir = runner.run(smoke_params, notebooks_dir=nbs, outputs_root=tmp_path / "out", log=None)
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "ok" and m["report"] is None
    assert m["report_error"] == "RuntimeError: renderer exploded"
    assert (run_dir / "executed" / "01_a.ipynb").is_file() and not (run_dir / "report.html").exists()
    # no report at all
    run_dir = runner.run(smoke_params, notebooks_dir=nbs, outputs_root=tmp_path / "out2", log=None,
                         report=False)
    assert json.loads((run_dir / "manifest.json").read_text())["report"] is None
