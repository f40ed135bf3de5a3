"""Run the workbook: execute notebooks ``01_*`` .. ``05_*`` in order with papermill.

``run(params_path)`` validates the params file first (nothing runs on a bad file), then executes
each notebook of ``notebooks_dir`` into ``<outputs_root>/<run_name>/executed/``, injecting the
parameters ``params_file`` (absolute path of the params file), ``run_dir`` (absolute path of
``<outputs_root>/<run_name>``), ``seed`` and ``overrides`` (a dict of dotted keys, ``{}`` when
none; each notebook applies them to what it loads, as the runner did). Kernels get
``TF_CPP_MIN_LOG_LEVEL=2`` and ``PYTHONHASHSEED=<seed>`` unless already set. Before starting, the
executed copies of the selected notebooks are removed. After every notebook it
rewrites ``<run_dir>/manifest.json`` atomically: the validated params, the params file, git
revision, package versions, Python version, per-notebook status and wall time. It stops at the
first failing notebook and raises `NotebookFailed`; the notebooks that finished keep their outputs.

When the run ends, with success or at a failing notebook, it renders ``<run_dir>/report.html``
(`accelnas.report.html.render_report`: one offline page of the executed notebooks, the failing one
marked) and records its path in the manifest (``report``). A rendering failure only warns
(``report_error`` in the manifest): it never fails or loses the run.

No TensorFlow here: the notebooks import it in their own kernel.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from accelnas.io import write_json as _write_json

#: Notebooks the runner executes, by file-name pattern, in this order.
NOTEBOOK_PATTERN = re.compile(r"^(0[1-5])_[A-Za-z0-9_]+\.ipynb$")

#: Kernel the notebooks run in (the venv's kernelspec, installed by ``make venv``).
KERNEL_NAME = "python3"

#: Environment set in the kernel unless already set by the caller.
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}

#: Distributions whose versions the manifest records (``None`` when not installed).
RECORDED_PACKAGES = (
    "accelnas", "tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "tensorboard", "papermill",
    "nbclient", "ipykernel", "numpy", "pandas", "pyarrow", "scipy", "matplotlib", "pyyaml", "tqdm",
)

MANIFEST_NAME = "manifest.json"
EXECUTED_DIR = "executed"


class NotebookFailed(RuntimeError):
    """A notebook of the run raised an error; the run stopped there.

    Attributes:
        notebook: notebook name without extension (``02_latency_model``).
        executed_path: the executed notebook to open (it holds the traceback).
        ename: exception class name raised in the notebook (``ValueError``).
        evalue: exception message.
        cell: execution count of the failing cell (``None`` when unknown).
    """

    def __init__(self, notebook: str, executed_path: Path, ename: str, evalue: str,
                 cell: int | None = None):
        self.notebook = notebook
        self.executed_path = Path(executed_path)
        self.ename = ename
        self.evalue = evalue
        self.cell = cell
        where = f" in cell [{cell}]" if cell is not None else ""
        first_line = (evalue or "").strip().splitlines()[0] if (evalue or "").strip() else ""
        error = f"{ename}: {first_line}" if first_line else ename
        hint = (f"open {self.executed_path} for the traceback" if self.executed_path.is_file()
                else "no executed notebook was written")
        super().__init__(f"notebook {notebook} failed{where}: {error} ({hint})")


# ---------------------------------------------------------------------------------------------
# helpers

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def parse_only(only: str | Iterable[str] | None) -> list[str] | None:
    """``"01,02"`` or ``["01", "03_nas_search"]`` -> a list of selectors (``None``: all)."""
    if only is None:
        return None
    items = only.split(",") if isinstance(only, str) else list(only)
    selectors = [str(s).strip() for s in items if str(s).strip()]
    if not selectors:
        raise ValueError("--only needs at least one notebook, e.g. --only 01,02")
    return selectors


def discover(notebooks_dir: str | os.PathLike, only: str | Iterable[str] | None = None) -> list[Path]:
    """The notebooks ``01_*.ipynb`` .. ``05_*.ipynb`` of ``notebooks_dir`` in order.

    Args:
        notebooks_dir: folder holding the source notebooks.
        only: selectors: a number (``"2"``, ``"02"``) or a notebook name with or without
            ``.ipynb``; ``None`` selects all.

    Raises:
        FileNotFoundError: the folder is missing or holds no workbook notebook.
        ValueError: a selector matches no notebook.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebooks folder not found: {folder}")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if not found:
        raise FileNotFoundError(f"no notebooks 01_*.ipynb .. 05_*.ipynb in {folder}")
    selectors = parse_only(only)
    if selectors is None:
        return found
    chosen = set()
    for sel in selectors:
        key = sel.removesuffix(".ipynb")
        if key.isdigit():
            key = f"{int(key):02d}"
        hits = [p for p in found if p.stem == key or p.stem.split("_", 1)[0] == key]
        if not hits:
            raise ValueError(f"--only {sel!r} matches no notebook; available: "
                             f"{', '.join(p.stem for p in found)}")
        chosen.update(hits)
    return [p for p in found if p in chosen]


def _git_info(where: Path) -> dict | None:
    """Revision and dirty flag (tracked files changed) of the git checkout holding ``where``
    (``None`` without git or outside a checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True,
                              text=True, timeout=20).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision, "dirty": dirty}


def package_versions(names: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of distributions (without importing them)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@contextlib.contextmanager
def _kernel_env(extra: Mapping[str, str]):
    """Set environment variables (those not already set) for kernels started inside the block."""
    added = [k for k in extra if k not in os.environ]
    for k in added:
        os.environ[k] = extra[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _kernel_config():
    """Client config: CurveZMQ-encrypted kernel transport where pyzmq supports it (and the
    kernelspec declares it), which also keeps ipykernel's plain-TCP warning off the console."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    c = Config()
    if zmq.has("curve") and KernelManager.class_traits().get("transport_encryption") is not None:
        c.KernelManager.transport_encryption = "auto"
    return c


def load_params(params_path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> dict:
    """Load and validate a params file, then apply ``overrides`` (dotted keys) with
    `accelnas.params.override` and re-validate.

    Raises:
        FileNotFoundError: no such params file.
        accelnas.params.ParamsError: invalid params or override.
    """
    path = Path(params_path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    from accelnas import params as _params

    p = _params.load(path)
    if overrides:
        p = _params.override(p, dict(overrides), source=f"{path} with --set overrides")
    return p


def _run_name(p: Mapping[str, Any], params_path: Path) -> str:
    """``run_name``, checked to be one folder name (the run must stay under outputs_root)."""
    name = p.get("run_name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        from accelnas.params import ParamsError

        raise ParamsError(str(params_path), "run_name", f"got {name!r}; allowed: a folder name of "
                                                        "letters, digits, '.', '_' or '-'")
    return name


def _write_report(run_dir: Path, manifest: dict, manifest_path: Path, say) -> Path | None:
    """Render ``report.html`` for the run and record it in the manifest; warn (never raise) when
    rendering fails, so the run's results stay as they are."""
    try:
        from accelnas.report.html import render_report

        path = render_report(run_dir)
    except Exception as e:  # noqa: BLE001 - a report problem must not lose the run
        message = f"report.html not written for {run_dir}: {type(e).__name__}: {e}"
        manifest.update(report=None, report_error=f"{type(e).__name__}: {e}")
        _write_json(manifest_path, manifest)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return None
    manifest["report"] = str(path)
    manifest.pop("report_error", None)
    _write_json(manifest_path, manifest)
    say(f"report: {path}", flush=True)
    return path


# ---------------------------------------------------------------------------------------------
# the runner

def run(params_path: str | os.PathLike, notebooks_dir: str | os.PathLike = "notebooks",
        outputs_root: str | os.PathLike = "outputs", overrides: Mapping[str, Any] | None = None,
        only: str | Iterable[str] | None = None, *, kernel_name: str = KERNEL_NAME,
        cwd: str | os.PathLike | None = None, log=print, report: bool = True) -> Path:
    """Execute the workbook notebooks in order for one params file.

    Args:
        params_path: the params YAML (validated before anything runs).
        notebooks_dir: folder with ``01_*.ipynb`` .. ``05_*.ipynb``.
        outputs_root: the run lands in ``<outputs_root>/<run_name>/``.
        overrides: ``{"dotted.key": value}`` applied on top of the file (and passed to the
            notebooks as the ``overrides`` parameter).
        only: run only these notebooks (``"01,02"`` or a list; numbers or names).
        kernel_name: Jupyter kernel the notebooks run in.
        cwd: working directory of the kernels (default: ``notebooks_dir``, as in JupyterLab).
        log: print-like callable for the progress lines (``print`` by default; ``None``: silent).
        report: render ``<run_dir>/report.html`` when the run ends (also after a failing
            notebook); a rendering error only warns.

    Returns:
        The run directory ``<outputs_root>/<run_name>`` (absolute).

    Raises:
        FileNotFoundError: params file or notebooks missing.
        accelnas.params.ParamsError: invalid params (raised before any notebook runs).
        ValueError: ``only`` selects no notebook.
        NotebookFailed: a notebook raised; later notebooks were not run.
    """
    params_path = Path(params_path).resolve()
    overrides = dict(overrides or {})
    p = load_params(params_path, overrides)
    run_name = _run_name(p, params_path)
    seed = p.get("seed")
    notebooks = discover(notebooks_dir, only)

    import papermill  # not at module import: keeps `accelnas --help` fast

    run_dir = (Path(outputs_root) / run_name).resolve()
    executed_dir = run_dir / EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / MANIFEST_NAME
    kernel_cwd = Path(cwd).resolve() if cwd is not None else Path(notebooks_dir).resolve()
    say = log or (lambda *a, **k: None)

    env = dict(KERNEL_ENV)
    from accelnas.search.data import DATA_DIR_ENV
    if os.environ.get(DATA_DIR_ENV):  # kernels run in the notebooks' folder: a relative path would move
        os.environ[DATA_DIR_ENV] = str(Path(os.environ[DATA_DIR_ENV]).resolve())
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 4294967295:
        env["PYTHONHASHSEED"] = str(seed)
    manifest: dict[str, Any] = {
        "run_name": run_name,
        "status": "running",
        "started": _now(),
        "finished": None,
        "params_file": str(params_path),
        "overrides": overrides,
        "only": parse_only(only),
        "params": p,
        "run_dir": str(run_dir),
        "git": _git_info(Path(notebooks_dir).resolve()) or _git_info(Path(__file__).parent),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "kernel": kernel_name,
        "kernel_env": {k: os.environ.get(k, v) for k, v in env.items()},
        "packages": package_versions(),
        "report": None,
        "notebooks": [
            {"name": nb.stem, "source": str(nb.resolve()),
             "executed": str(executed_dir / nb.name), "status": "pending",
             "started": None, "finished": None, "wall_s": None, "error": None}
            for nb in notebooks
        ],
    }
    for nb in notebooks:  # no stale copy from an earlier run may pass for this run's result
        (executed_dir / nb.name).unlink(missing_ok=True)
    _write_json(manifest_path, manifest)
    parameters = {"params_file": str(params_path), "run_dir": str(run_dir), "seed": seed,
                  "overrides": overrides}

    total = len(notebooks)
    for i, (nb, entry) in enumerate(zip(notebooks, manifest["notebooks"]), start=1):
        out_path = executed_dir / nb.name
        say(f"[{i}/{total}] {nb.stem} ...", end=" ", flush=True)
        entry.update(status="running", started=_now())
        _write_json(manifest_path, manifest)
        t0 = time.perf_counter()
        failure: NotebookFailed | None = None
        try:
            with _kernel_env(env):
                papermill.execute_notebook(
                    str(nb), str(out_path), parameters=parameters, kernel_name=kernel_name,
                    language="python", progress_bar=False, log_output=False, cwd=str(kernel_cwd),
                    config=_kernel_config())
        except papermill.PapermillExecutionError as e:
            failure = NotebookFailed(nb.stem, out_path, e.ename, e.evalue, e.exec_count)
        except KeyboardInterrupt:
            entry.update(status="interrupted", finished=_now(),
                         wall_s=round(time.perf_counter() - t0, 3))
            manifest.update(status="interrupted", finished=_now())
            _write_json(manifest_path, manifest)
            say("interrupted", flush=True)
            raise
        except Exception as e:  # dead kernel, timeout, unreadable notebook, ...
            failure = NotebookFailed(nb.stem, out_path, type(e).__name__, str(e))
        wall_s = time.perf_counter() - t0
        entry.update(finished=_now(), wall_s=round(wall_s, 3))
        if failure is not None:
            entry.update(status="failed", error={"ename": failure.ename, "evalue": failure.evalue,
                                                 "cell": failure.cell})
            manifest.update(status="failed", finished=_now(), failed_notebook=nb.stem)
            _write_json(manifest_path, manifest)
            say(f"FAILED ({wall_s:.1f} s)", flush=True)
            if report:
                _write_report(run_dir, manifest, manifest_path, say)
            raise failure
        entry["status"] = "ok"
        _write_json(manifest_path, manifest)
        say(f"ok ({wall_s:.1f} s)", flush=True)

    manifest.update(status="ok", finished=_now())
    _write_json(manifest_path, manifest)
    if report:
        _write_report(run_dir, manifest, manifest_path, say)
    return run_dir
