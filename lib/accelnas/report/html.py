"""One self-contained HTML page from a run's executed notebooks: ``<run_dir>/report.html``.

``render_report(run_dir)`` reads ``<run_dir>/executed/*.ipynb`` (in name order, i.e. 01..05) and
``<run_dir>/manifest.json`` (written by `accelnas.runner.run`; optional) and writes one page that
opens offline and can be mailed around:

* a header: run name and status, params file, overrides, git revision, Python and platform,
  one row per notebook (status, wall time, error) and the package versions; the params themselves
  in a collapsed block; a table of contents linking each notebook section and its ``##`` headings;
* each notebook rendered from its JSON with code hidden: markdown cells (nbconvert's mistune
  renderer, heading ids prefixed per notebook so they stay unique on the page) and the outputs:
  HTML (pandas tables), images (PNG/JPEG/GIF/SVG embedded as ``data:`` URIs), markdown, plain text,
  errors (``ename: evalue`` with the traceback collapsed). Widgets and JavaScript outputs are
  dropped (they need a live kernel or online scripts);
* a notebook that failed (manifest status or an error output) is marked in the header, the table of
  contents and its section, with a link to where execution stopped; notebooks of the manifest that
  never ran are listed as "not run"; executed notebooks of an earlier run that this manifest does
  not list (``accelnas run --only``) are included and marked as such.

Streams: ANSI escapes are stripped, carriage-return progress bars collapse to their final state,
and very long streams keep their first and last `STREAM_KEEP_LINES` lines. **stderr is dropped**
except Python warning lines (``...: SomethingWarning: message``), deduplicated and shown muted:
what lands on stderr in these kernels is TensorFlow/absl start-up logging and tqdm progress bars,
which are noise in a shared report; warnings are kept because they can change how results read.

Nothing on the page fetches a remote resource: no nbconvert template (its HTML pulls MathJax and
require.js from CDNs), inline CSS only, and a final pass neutralises remote ``src``/``href``
attributes on anything but ``<a>`` links, remote CSS ``@import``/``url()`` inside outputs
(`find_remote_resources` checks a page). LaTeX in markdown is shown as its source.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import mimetypes
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelnas.io import atomic_write_bytes

REPORT_NAME = "report.html"
EXECUTED_DIR = "executed"
MANIFEST_NAME = "manifest.json"

#: Streams longer than twice this many lines keep their first and last ``STREAM_KEEP_LINES``.
STREAM_KEEP_LINES = 150

#: Output MIME types in order of preference (as nbconvert's HTML exporter).
MIME_PRIORITY = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "image/gif",
                 "text/markdown", "text/latex", "application/json", "text/plain")

#: Cell tags that hide a cell or its outputs from the report (Jupyter Book / nbconvert names).
REMOVE_CELL_TAGS = frozenset({"remove-cell", "remove_cell", "report-skip"})
REMOVE_OUTPUT_TAGS = frozenset({"remove-output", "remove_output"})
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_WS = re.compile(r"\s+")
_WARNING_LINE = re.compile(r"\b[A-Z]\w*Warning: ")
_REMOTE = r"""["']?\s*(?:https?:)?//"""
#: A remote resource a browser would fetch: src/href/... on any tag but <a>, CSS @import/url().
_REMOTE_RESOURCE = re.compile(
    r"<(?!a[\s>])[a-zA-Z][\w:-]*[^>]*?\s(?:src|href|srcset|poster|data|xlink:href|background)"
    r"\s*=\s*" + _REMOTE + r"|@import\s+(?:url\(\s*)?" + _REMOTE + r"|url\(\s*" + _REMOTE,
    re.IGNORECASE)
_TAG = re.compile(r"<(?!a[\s>])([a-zA-Z][\w:-]*)(\s[^>]*)?>", re.IGNORECASE)
_REMOTE_ATTR = re.compile(r"(\s)(src|href|srcset|poster|data|xlink:href|background)(\s*=\s*"
                          + _REMOTE + ")", re.IGNORECASE)
_REMOTE_IMPORT = re.compile(r"@import\s+(?:url\(\s*)?" + _REMOTE + r"[^;]*;?", re.IGNORECASE)
_REMOTE_URL = re.compile(r"url\(\s*" + _REMOTE + r"[^)]*\)", re.IGNORECASE)


class ReportError(FileNotFoundError):
    """The report cannot be rendered: no such run folder, or no executed notebooks in it."""


# ---------------------------------------------------------------------------------------------
# public API

def render_report(run_dir: str | os.PathLike, *, output: str | os.PathLike | None = None) -> Path:
    """Render ``<run_dir>/executed/*.ipynb`` into one offline HTML page; returns its path.

    Args:
        run_dir: a run folder (``outputs/<run_name>``) holding ``executed/`` and usually
            ``manifest.json``.
        output: where to write (default ``<run_dir>/report.html``); written atomically.

    Raises:
        ReportError: ``run_dir`` is not a folder or holds no executed notebook.
    """
    run_dir = Path(run_dir)
    page = build_html(run_dir)
    out = Path(output) if output is not None else run_dir / REPORT_NAME
    return atomic_write_bytes(out, page.encode("utf-8"))


def build_html(run_dir: str | os.PathLike) -> str:
    """The report page of ``run_dir`` as a string (see `render_report`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run folder not found: {run_dir}")
    executed_dir = run_dir / EXECUTED_DIR
    # a notebook's failed rerun is kept beside its last good execution (``<name>.failed.ipynb``):
    # the report shows the good one
    files = sorted(p for p in executed_dir.glob("*.ipynb")
                   if not p.name.startswith(".") and not p.name.endswith(".failed.ipynb")) \
        if executed_dir.is_dir() else []
    if not files:
        raise ReportError(f"no executed notebooks in {executed_dir} (run `accelnas run PARAMS` "
                          "first; it writes them there)")
    manifest = _read_manifest(run_dir)
    entries = {e.get("name"): e for e in manifest.get("notebooks") or [] if isinstance(e, Mapping)}

    sections = [_render_notebook(path, entries.get(path.stem), bool(manifest), run_dir)
                for path in files]
    not_run = [e for name, e in entries.items()
               if name not in {p.stem for p in files}]
    run_name = manifest.get("run_name") or run_dir.name
    body = "\n".join([
        _render_header(run_name, manifest, sections, not_run, run_dir),
        _render_toc(sections),
        *(s["html"] for s in sections),
        f'<footer>Rendered by accelnas.report.html on {html.escape(_now())} from '
        f'<code>{html.escape(str(executed_dir))}</code>. Code cells are hidden; open the executed '
        'notebooks for the code.</footer>',
    ])
    page = _PAGE.format(title=html.escape(f"accelnas report: {run_name}"), css=_CSS, body=body)
    return neutralize_remote(page)


def find_remote_resources(page: str) -> list[str]:
    """Snippets of ``page`` that make a browser fetch something remote (empty: opens offline).
    Plain ``<a href="https://...">`` links are not resources and are not reported."""
    return [m.group(0) for m in _REMOTE_RESOURCE.finditer(page)]


def neutralize_remote(fragment: str) -> str:
    """Rename remote ``src``/``href``/... attributes of every tag but ``<a>`` to ``data-remote-*``
    (the browser no longer fetches them) and drop remote CSS ``@import`` / ``url()``."""
    def fix_tag(m: re.Match) -> str:
        attrs = m.group(2)
        if not attrs:
            return m.group(0)
        fixed = _REMOTE_ATTR.sub(lambda a: f"{a.group(1)}data-remote-"
                                           f"{a.group(2).lower().replace(':', '-')}{a.group(3)}",
                                 attrs)
        return f"<{m.group(1)}{fixed}>"

    out = _TAG.sub(fix_tag, fragment)
    out = _REMOTE_IMPORT.sub("/* remote @import removed */", out)
    return _REMOTE_URL.sub("none", out)


# ---------------------------------------------------------------------------------------------
# manifest and header

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _read_manifest(run_dir: Path) -> dict:
    path = run_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fmt_seconds(s: Any) -> str:
    if not isinstance(s, (int, float)) or isinstance(s, bool):
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _status_badge(status: str) -> str:
    cls = {"ok": "ok", "failed": "failed", "running": "running", "interrupted": "failed",
           "not run": "pending", "pending": "pending"}.get(status, "pending")
    return f'<span class="badge {cls}">{html.escape(status)}</span>'


def _render_header(run_name: str, manifest: dict, sections: list[dict], not_run: list[dict],
                   run_dir: Path) -> str:
    esc = html.escape
    rows: list[tuple[str, str]] = []
    if not manifest:
        rows.append(("manifest", f"none found in <code>{esc(str(run_dir))}</code>"))
    else:
        rows.append(("status", _status_badge(str(manifest.get("status", "unknown")))
                     + (f" at notebook <code>{esc(str(manifest['failed_notebook']))}</code>"
                        if manifest.get("failed_notebook") else "")))
        if manifest.get("started"):
            rows.append(("started / finished", f"{esc(str(manifest.get('started')))} / "
                                               f"{esc(str(manifest.get('finished') or '–'))}"))
        if manifest.get("params_file"):
            rows.append(("params file", f"<code>{esc(str(manifest['params_file']))}</code>"))
        if manifest.get("overrides"):
            rows.append(("overrides", "<code>" + esc(", ".join(
                f"{k}={v!r}" for k, v in dict(manifest["overrides"]).items())) + "</code>"))
        if manifest.get("only"):
            rows.append(("only", f"<code>{esc(','.join(map(str, manifest['only'])))}</code>"))
        git = manifest.get("git")
        if isinstance(git, Mapping) and git.get("revision"):
            rows.append(("git revision", f"<code>{esc(str(git['revision']))}</code>"
                         + (" (uncommitted changes)" if git.get("dirty") else "")))
        elif "git" in manifest:
            rows.append(("git revision", "unknown (not a git checkout)"))
        env = " · ".join(esc(str(x)) for x in (
            f"Python {manifest['python']}" if manifest.get("python") else None,
            manifest.get("platform"),
            f"kernel {manifest['kernel']}" if manifest.get("kernel") else None) if x)
        if env:
            rows.append(("environment", env))
    summary = "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)

    nb_rows = []
    total = 0.0
    for s in sections:
        wall = s["wall_s"]
        total += wall if isinstance(wall, (int, float)) else 0.0
        err = f'<a href="#{s["id"]}-error">{esc(s["error"])}</a>' if s["error"] else ""
        nb_rows.append(f'<tr><td><a href="#{s["id"]}">{esc(s["name"])}</a></td>'
                       f'<td>{_status_badge(s["status"])}</td><td class="num">'
                       f'{_fmt_seconds(wall)}</td><td>{err}</td></tr>')
    for e in not_run:
        nb_rows.append(f'<tr><td>{esc(str(e.get("name")))}</td><td>{_status_badge("not run")}'
                       f'</td><td class="num">–</td><td></td></tr>')
    nb_rows.append(f'<tr class="total"><td>total</td><td></td><td class="num">'
                   f'{_fmt_seconds(total)}</td><td></td></tr>')
    notebooks = ('<table class="meta"><thead><tr><th>notebook</th><th>status</th>'
                 '<th>wall time</th><th>error</th></tr></thead><tbody>'
                 + "\n".join(nb_rows) + "</tbody></table>")

    extras = []
    packages = manifest.get("packages")
    if isinstance(packages, Mapping):
        installed = [(k, v) for k, v in packages.items() if v]
        if installed:
            extras.append("<details><summary>package versions</summary><p class=\"packages\">"
                          + " · ".join(f"{esc(str(k))}&nbsp;{esc(str(v))}" for k, v in installed)
                          + "</p></details>")
    if manifest.get("params") is not None:
        extras.append("<details><summary>params (validated, overrides applied)</summary><pre>"
                      + esc(_params_text(manifest["params"])) + "</pre></details>")
    return (f'<header><h1>accelnas report: {esc(run_name)}</h1>'
            f'<table class="meta summary">{summary}</table>{notebooks}{"".join(extras)}</header>')


def _params_text(params: Any) -> str:
    """Params as YAML (lists of scalars on one line), JSON when PyYAML cannot dump them."""
    try:
        import yaml

        return yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=100)
    except Exception:
        return json.dumps(params, indent=2, default=str)


def _render_toc(sections: list[dict]) -> str:
    items = []
    for s in sections:
        mark = f' {_status_badge(s["status"])}' if s["status"] not in ("ok",) else ""
        sub = ""
        if s["headings"]:
            sub = "<ul>" + "".join(f'<li><a href="#{hid}">{text}</a></li>'
                                   for hid, text in s["headings"]) + "</ul>"
        label = s["title"] or html.escape(s["name"])  # title: already HTML from markdown
        items.append(f'<li><a href="#{s["id"]}">{label}</a> <code class="nb-name">'
                     f'{html.escape(s["name"])}</code>{mark}{sub}</li>')
    return '<nav class="toc"><h2>Contents</h2><ol>' + "".join(items) + "</ol></nav>"


# ---------------------------------------------------------------------------------------------
# notebooks

def _section_id(stem: str) -> str:
    return "nb-" + re.sub(r"[^A-Za-z0-9_-]+", "-", stem)


def _render_notebook(path: Path, entry: Mapping | None, have_manifest: bool,
                     run_dir: Path) -> dict:
    import nbformat

    sid = _section_id(path.stem)
    info: dict[str, Any] = {"id": sid, "name": path.stem, "title": "", "headings": [],
                            "status": "ok", "wall_s": None, "error": ""}
    if entry is not None:
        info["status"] = str(entry.get("status") or "ok")
        info["wall_s"] = entry.get("wall_s")
        err = entry.get("error")
        if isinstance(err, Mapping) and err.get("ename"):
            first = (str(err.get("evalue") or "").strip().splitlines() or [""])[0]
            where = f"cell [{err['cell']}]: " if err.get("cell") is not None else ""
            info["error"] = f"{where}{err['ename']}" + (f": {first}" if first else "")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # unreadable / truncated notebook: report it, render the rest
        info["status"] = "unreadable"
        info["html"] = (f'<section id="{sid}" class="notebook failed"><div class="nb-head">'
                        f'{html.escape(path.name)} {_status_badge("unreadable")}</div>'
                        f'<p class="banner">could not read {html.escape(str(path))}: '
                        f'{html.escape(f"{type(e).__name__}: {e}")}</p></section>')
        return info
    pm = nb.metadata.get("papermill") or {}
    if info["wall_s"] is None and isinstance(pm.get("duration"), (int, float)):
        info["wall_s"] = pm["duration"]
    src_dirs = [Path(p).parent for p in (pm.get("input_path"), (entry or {}).get("source")) if p]
    ctx = _Ctx(sid, [*src_dirs, run_dir, path.parent])

    parts: list[str] = []
    first_error: dict | None = None
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags") or [])
        if tags & REMOVE_CELL_TAGS:
            continue
        if PAPERMILL_ERROR_TAG in tags:
            if "papermill-error-cell" in cell.source and "id=" in cell.source:
                parts.append(f'<div class="stopped" id="{sid}-error">Execution stopped here with '
                             'an exception:</div>')
                ctx.anchor_placed = True
            continue  # papermill's "An Exception was encountered" banner: replaced by ours
        if cell.cell_type == "markdown":
            parts.append(f'<div class="md">{ctx.markdown(cell.source, cell.get("attachments"))}'
                         "</div>")
        elif cell.cell_type == "code" and not tags & REMOVE_OUTPUT_TAGS:
            outs = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and first_error is None:
                    first_error = out
                    if not ctx.anchor_placed:
                        outs.append(f'<span id="{sid}-error"></span>')
                        ctx.anchor_placed = True
                outs.append(_render_output(out, ctx))
            outs = [o for o in outs if o]
            if outs:
                parts.append('<div class="output">' + "\n".join(outs) + "</div>")
        # raw cells are not shown

    if first_error is not None and info["status"] in ("ok", "running"):
        info["status"] = "failed"
    if first_error is not None and not info["error"]:
        first = (str(first_error.get("evalue") or "").strip().splitlines() or [""])[0]
        info["error"] = f"{first_error.get('ename', 'Error')}" + (f": {first}" if first else "")
    if info["status"] == "failed" and not ctx.anchor_placed:
        parts.append(f'<span id="{sid}-error"></span>')

    info["title"] = ctx.title
    info["headings"] = ctx.headings
    wall = _fmt_seconds(info["wall_s"])
    banner = ""
    if info["status"] == "failed":
        banner = (f'<p class="banner">This notebook failed'
                  f'{": " + html.escape(info["error"]) if info["error"] else ""}. '
                  f'Later notebooks did not run. <a href="#{sid}-error">Where it stopped</a>.</p>')
    elif info["status"] == "interrupted":
        banner = '<p class="banner warn">This notebook was interrupted: its outputs are ' \
                 'incomplete.</p>'
    elif info["status"] == "running":
        banner = '<p class="banner warn">This notebook was still running when the report was ' \
                 'rendered: its outputs are incomplete.</p>'
    elif have_manifest and entry is None:
        banner = ('<p class="banner note">Executed by an earlier run into this folder; not part '
                  'of the run recorded in manifest.json.</p>')
    cls = "notebook failed" if info["status"] in ("failed", "interrupted") else "notebook"
    info["html"] = (f'<section id="{sid}" class="{cls}"><div class="nb-head">'
                    f'<span>{html.escape(path.name)}</span> {_status_badge(info["status"])} '
                    f'<span class="wall">{wall}</span></div>{banner}'
                    + "\n".join(parts) + "</section>")
    return info


class _Ctx:
    """Per-notebook rendering state: id prefix, headings for the TOC, image search folders."""

    _HEADING = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)</h\1>', re.DOTALL)
    _ID = re.compile(r'(\sid\s*=\s*)(["\'])([^"\']*)\2')
    _HREF = re.compile(r'(\shref\s*=\s*)(["\'])#([^"\']*)\2')
    _IMG = re.compile(r'(<img\b[^>]*?\ssrc\s*=\s*)(["\'])([^"\']*)\2', re.IGNORECASE)

    def __init__(self, sid: str, image_dirs: list[Path]):
        self.sid = sid
        self.image_dirs = image_dirs
        self.title = ""
        self.headings: list[tuple[str, str]] = []
        self.anchor_placed = False

    def markdown(self, source: str, attachments: Mapping | None = None) -> str:
        from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

        try:  # nbconvert's notebook markdown (math kept as source, attachments embedded)
            out = MarkdownWithMath(renderer=IPythonRenderer(
                escape=False, attachments=dict(attachments or {}))).render(source)
        except Exception as e:  # e.g. a missing attachment: show the source, not nothing
            return (f'<pre class="md-source" title="{html.escape(f"{type(e).__name__}: {e}")}">'
                    f"{html.escape(source)}</pre>")
        out = self._ID.sub(lambda m: f"{m.group(1)}{m.group(2)}{self.sid}-{m.group(3)}{m.group(2)}",
                           out)
        out = self._HREF.sub(lambda m: f"{m.group(1)}{m.group(2)}#{self.sid}-{m.group(3)}"
                                       f"{m.group(2)}", out)
        out = self._IMG.sub(lambda m: m.group(1) + m.group(2)
                            + self._embed_src(m.group(3)) + m.group(2), out)
        for level, hid, inner in self._HEADING.findall(out):
            text = re.sub(r"<a class=\"anchor-link\".*?</a>", "", inner, flags=re.DOTALL)
            text = re.sub(r"<[^>]+>", "", text).strip()
            if level == "1" and not self.title:
                self.title = text
            elif level == "2":
                self.headings.append((hid, text))
        return out

    def _embed_src(self, src: str) -> str:
        """A local image file (relative to the notebook's source folder, the run folder or the
        executed folder) as a data: URI; anything else unchanged."""
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", src, re.IGNORECASE):
            return src
        rel = html.unescape(src).split("?", 1)[0]
        for folder in self.image_dirs:
            f = (folder / rel)
            mime = mimetypes.guess_type(f.name)[0] or ""
            if mime.startswith("image/") and f.is_file():
                try:
                    return _data_uri(mime, base64.b64encode(f.read_bytes()).decode("ascii"))
                except OSError:
                    continue
        return src


def _data_uri(mime: str, data: str | bytes) -> str:
    if mime == "image/svg+xml" and not _looks_base64(data):
        raw = data.encode("utf-8") if isinstance(data, str) else data
        data = base64.b64encode(raw).decode("ascii")
    if isinstance(data, bytes):
        data = data.decode("ascii")
    return f"data:{mime};base64,{_WS.sub('', data)}"


def _looks_base64(data: str | bytes) -> bool:
    s = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    return bool(re.fullmatch(r"[A-Za-z0-9+/=\s]+", s[:4096]))


# ---------------------------------------------------------------------------------------------
# outputs

def _join(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text or "")


def clean_stream(text: str, keep_lines: int = STREAM_KEEP_LINES) -> str:
    """ANSI escapes removed, ``\\r`` progress bars collapsed to their last state, backspaces
    applied, and the middle of very long streams elided."""
    text = _ANSI.sub("", text)
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            segs = [s for s in line.split("\r") if s]
            line = segs[-1] if segs else ""
        if "\b" in line:  # backspace erases the character before it
            kept: list[str] = []
            for ch in line:
                if ch != "\b":
                    kept.append(ch)
                elif kept:
                    kept.pop()
            line = "".join(kept)
        lines.append(line)
    if len(lines) > 2 * keep_lines:
        omitted = len(lines) - 2 * keep_lines
        lines = lines[:keep_lines] + [f"… {omitted} lines omitted …"] + lines[-keep_lines:]
    return "\n".join(lines)


def stderr_warnings(text: str) -> list[str]:
    """The Python warning lines of a stderr stream (deduplicated, in order); the rest (TF/absl
    logging, progress bars) is dropped from the report."""
    seen: dict[str, None] = {}
    for line in _ANSI.sub("", text).replace("\r", "\n").split("\n"):
        if _WARNING_LINE.search(line):
            seen.setdefault(line.strip(), None)
    return list(seen)


def _render_output(out: Mapping, ctx: _Ctx) -> str:
    kind = out.get("output_type")
    esc = html.escape
    if kind == "stream":
        text = _join(out.get("text"))
        if out.get("name") == "stderr":
            warns = stderr_warnings(text)
            return ('<pre class="stderr">' + esc("\n".join(warns)) + "</pre>") if warns else ""
        text = clean_stream(text).strip("\n")
        return f'<pre class="stdout">{esc(text)}</pre>' if text.strip() else ""
    if kind == "error":
        ename, evalue = str(out.get("ename", "Error")), str(out.get("evalue", ""))
        tb = clean_stream("\n".join(_join(t) for t in out.get("traceback") or []))
        return (f'<div class="error"><pre class="error-head">{esc(ename)}: {esc(evalue)}</pre>'
                + (f"<details><summary>traceback</summary><pre>{esc(tb)}</pre></details>"
                   if tb.strip() else "") + "</div>")
    if kind not in ("display_data", "execute_result"):
        return ""
    data = out.get("data") or {}
    meta = out.get("metadata") or {}
    if any(m.startswith("application/vnd.jupyter.widget") for m in data):
        return ""  # widgets need a live kernel; their text/plain is "HBox(...)" noise
    mime = next((m for m in MIME_PRIORITY if m in data), None)
    if mime is None:
        return ""
    value = data[mime]
    if mime == "text/html":
        return f'<div class="html-output">{_join(value)}</div>'
    if mime.startswith("image/"):
        m = meta.get(mime) if isinstance(meta.get(mime), Mapping) else {}
        size = "".join(f' {k}="{int(m[k])}"' for k in ("width", "height")
                       if isinstance(m.get(k), (int, float)))
        return f'<img src="{_data_uri(mime, _join(value))}"{size} alt="figure">'
    if mime == "text/markdown":
        return f'<div class="md">{ctx.markdown(_join(value))}</div>'
    if mime == "application/json":
        return f"<pre>{esc(json.dumps(value, indent=2, default=str))}</pre>"
    return f"<pre>{esc(clean_stream(_join(value)))}</pre>"


# ---------------------------------------------------------------------------------------------
# page

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg2:#f6f8fa; --red:#cf222e;
        --green:#1a7f37; --amber:#9a6700; }
* { box-sizing: border-box; }
body { font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial,
       sans-serif; color: var(--fg); max-width: 1080px; margin: 0 auto;
       padding: 1.5rem 1.25rem 4rem; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.4em 0 .5em; }
header h1 { margin-top: 0; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
a.anchor-link { visibility: hidden; margin-left: .3em; font-size: .8em; }
h1:hover a.anchor-link, h2:hover a.anchor-link, h3:hover a.anchor-link { visibility: visible; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: 13px; }
p code, li code, td code { background: var(--bg2); padding: .1em .3em; border-radius: 4px; }
pre { background: var(--bg2); padding: .6em .8em; overflow-x: auto; border-radius: 6px;
      white-space: pre; margin: .4em 0; }
pre.stderr { color: var(--amber); background: #fff8c5; font-size: 12px; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: .3em .6em; text-align: left; vertical-align: top; }
thead th { background: var(--bg2); }
tbody tr:nth-child(even) { background: #fafbfc; }
.html-output { overflow-x: auto; max-width: 100%; }
.html-output table.dataframe td, .html-output table.dataframe th { text-align: right; }
table.meta th { background: var(--bg2); white-space: nowrap; }
table.meta td.num { text-align: right; white-space: nowrap; }
table.meta tr.total td { font-weight: 600; }
.packages { font-size: 13px; color: var(--muted); }
details { margin: .5em 0; } summary { cursor: pointer; color: var(--muted); }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: 12px;
         font-weight: 600; border: 1px solid currentColor; }
.badge.ok { color: var(--green); } .badge.failed { color: var(--red); }
.badge.running { color: var(--amber); } .badge.pending { color: var(--muted); }
nav.toc { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px;
          padding: .4em 1.2em .8em; margin: 1.5em 0; }
nav.toc h2 { margin: .6em 0 .3em; font-size: 1.1em; }
nav.toc ul { font-size: 14px; margin: .2em 0 .4em; }
nav.toc code.nb-name { font-size: 11px; color: var(--muted); background: none; }
section.notebook { border-top: 3px solid var(--line); margin-top: 2.5em; padding-top: .3em; }
section.notebook.failed { border-top-color: var(--red); }
.nb-head { font-size: 13px; color: var(--muted); display: flex; gap: .8em; align-items: center; }
.banner { border-left: 4px solid var(--red); background: #ffebe9; padding: .5em .8em; }
.banner.warn { border-color: var(--amber); background: #fff8c5; }
.banner.note { border-color: var(--muted); background: var(--bg2); }
.stopped { color: var(--red); font-weight: 600; margin-top: 1em; }
.error pre.error-head { color: var(--red); background: #ffebe9; white-space: pre-wrap; }
.output { margin: .3em 0 .8em; }
footer { margin-top: 3em; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line);
         padding-top: .6em; }
@media print { details { display: block; } nav.toc { break-after: page; } }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="accelnas.report.html">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""
