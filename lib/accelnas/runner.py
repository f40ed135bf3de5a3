"""Run the workbook: execute notebooks ``01_*`` .. ``05_*`` in order with papermill.

``run(params_path)`` checks everything it can before the first notebook starts, so that a run
fails at once rather than at notebook 03:

* the params file is validated (accelerator names and YAML paths included: they must resolve);
* the notebooks are found (and ``only`` selects some of them);
* the dataset, when a selected notebook reads it (`DATA_NOTEBOOKS`: 03, 04, 05), can be resolved
  (`accelnas.train.data.locate_dataset`, without loading it or importing TensorFlow);
* the run folder ``<outputs_root>/<run_name>/`` is not in use (`run_lock`: one invocation per run
  folder at a time; a second one is refused with `RunLocked`);
* a run folder that already holds a run (its ``manifest.json``) was made with the same params
  (validated, overrides and seed included) and the same notebooks, else `RunConflict` names the
  differing keys: its results would mix with this run's. ``overwrite=True`` (``accelnas run
  --overwrite``) deletes the folder's earlier results instead and starts it again.

Each notebook of ``notebooks_dir`` then runs with the parameters ``params_file`` (absolute path of
the params file), ``run_dir`` (absolute path of ``<outputs_root>/<run_name>``), ``seed`` and
``overrides`` (a dict of dotted keys, ``{}`` when none; each notebook applies them to what it
loads). Kernels get ``TF_CPP_MIN_LOG_LEVEL=2`` and ``PYTHONHASHSEED=<seed>`` unless already set.

A notebook executes into a staging folder (``<run_dir>/.staging/``) and moves to
``executed/<name>.ipynb`` only when it succeeded, so a rerun keeps the earlier executions until
the new ones succeed. A failing (or interrupted) notebook keeps the earlier execution and is saved
next to it as ``executed/<name>.failed.ipynb`` (removed when the notebook next succeeds); without
an earlier execution (or over one that failed too) it takes its place as ``executed/<name>.ipynb``.
The run stops at the first failing notebook and raises `NotebookFailed`, which names the failed
copy; notebooks not run this time keep their earlier executions.

``<run_dir>/manifest.json`` is rewritten atomically after every notebook: the validated params,
the params file, overrides, git revision, package versions, Python version, per-notebook status and
wall time. Its top-level fields describe the latest invocation; ``history`` lists every invocation
(started, finished, params file, only, overrides, overwrite, status, git), oldest first. Refused
invocations leave no trace.

When the run ends, it renders ``<run_dir>/report.html`` (`accelnas.report.html.render_report`: one
offline page of the executed notebooks, a failing one marked) and records its path in the manifest
(``report``): after a success, and after a failure whose failed execution took its notebook's
place. After a failure that kept an earlier execution, the earlier report.html stays as it is (it
shows the executions in executed/). The page is written atomically: a rendering failure keeps the
previous page and only warns (``report_error`` in the manifest); it never fails the run.

No TensorFlow here: the notebooks import it in their own kernel.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accelnas.io import exclusive_lock, lock_holder
from accelnas.schema import describe_changes, param_changes
from accelnas.io import write_json as _write_json

#: Notebooks the runner executes, by file-name pattern, in this order.
NOTEBOOK_PATTERN = re.compile(r"^(0[1-5])_[A-Za-z0-9_]+\.ipynb$")

#: Notebooks (by number) that read the ``dataset``: it is checked before the run when one of them
#: is selected.
DATA_NOTEBOOKS = ("03", "04", "05")

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
STAGING_DIR = ".staging"  # notebooks execute here, then move into executed/ when they succeeded
FAILED_SUFFIX = ".failed.ipynb"  # executed/<name>.failed.ipynb: a failure beside a kept execution
LOCK_NAME = ".lock"  # the run folder's lock file (`run_lock`)
REPORT_NAME = "report.html"


class NotebookFailed(RuntimeError):
    """A notebook of the run raised an error; the run stopped there.

    Attributes:
        notebook: notebook name without extension (``02_latency_model``).
        executed_path: the executed notebook to open (it holds the traceback):
            ``executed/<name>.ipynb``, or ``executed/<name>.failed.ipynb`` when an earlier
            execution was kept.
        ename: exception class name raised in the notebook (``ValueError``).
        evalue: exception message.
        cell: execution count of the failing cell (``None`` when unknown).
        kept: the earlier execution kept in ``executed/`` (``None`` when there was none).
    """

    def __init__(self, notebook: str, executed_path: Path, ename: str, evalue: str,
                 cell: int | None = None, kept: Path | None = None):
        self.notebook = notebook
        self.executed_path = Path(executed_path)
        self.ename = ename
        self.evalue = evalue
        self.cell = cell
        self.kept = Path(kept) if kept is not None else None
        where = f" in cell [{cell}]" if cell is not None else ""
        first_line = (evalue or "").strip().splitlines()[0] if (evalue or "").strip() else ""
        error = f"{ename}: {first_line}" if first_line else ename
        hint = (f"open {self.executed_path} for the traceback" if self.executed_path.is_file()
                else "no executed notebook was written")
        if self.kept is not None:
            hint += f"; the earlier execution stays at {self.kept}"
        super().__init__(f"notebook {notebook} failed{where}: {error} ({hint})")


class RunRefused(ValueError):
    """The run was refused before any notebook ran (a ValueError: the CLI exits 2)."""


class RunConflict(RunRefused):
    """The run folder holds a run made with other params or notebooks."""


class RunLocked(RunRefused):
    """Another invocation holds the run folder's lock."""


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


# ---------------------------------------------------------------------------------------------
# inputs, checked before the first notebook

def check_inputs(params: Mapping[str, Any], notebooks: Sequence[Path],
                 cwd: str | os.PathLike | None = None) -> dict:
    """Check what the selected ``notebooks`` read besides the params file (validated already,
    accelerator YAML paths included): the dataset, when one of `DATA_NOTEBOOKS` is selected.
    Returns ``{"dataset": where}`` (``{}`` when no selected notebook reads data).

    Raises:
        FileNotFoundError: a missing input (the message says what was tried and what to set).
    """
    if not any(nb.name[:2] in DATA_NOTEBOOKS for nb in notebooks):
        return {}
    from accelnas.train.data import locate_dataset

    return {"dataset": locate_dataset(params["dataset"], cwd)}


# ---------------------------------------------------------------------------------------------
# reruns: same params, one invocation at a time

def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from the manifest (tuples become lists, odd values text)."""
    return json.loads(json.dumps(obj, default=str))


def _previous_manifest(run_dir: Path, overwrite: bool) -> dict | None:
    """The manifest of the run already in ``run_dir`` (``None``: none). An unreadable one refuses
    the run (nothing tells which params made the folder), unless ``overwrite``."""
    path = run_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        if overwrite:
            return None
        raise RunConflict(f"{path} is unreadable ({e}), so nothing tells which params made "
                          f"{run_dir}: pass --overwrite (overwrite=True) to delete its results and "
                          "start it again, or use another run_name (--set run_name=NAME)") from None
    return manifest


def check_rerun(previous: Mapping | None, params: Mapping[str, Any], workbook: Sequence[str],
                run_dir: str | os.PathLike) -> None:
    """Refuse to run into a run folder whose manifest (``previous``) records other params or
    another set of notebooks (``workbook``: the names of all notebooks, selected or not): results
    of both would mix in one folder.

    Raises:
        RunConflict: one line naming the differing keys (``old -> new``) and the fix.
    """
    if not previous:
        return
    changes = []
    if "params" in previous:
        changes += param_changes(previous["params"], _jsonable(params))
    old_workbook = previous.get("workbook")
    if old_workbook is not None and list(old_workbook) != list(workbook):
        changes.append(("notebooks", ", ".join(map(str, old_workbook)), ", ".join(workbook)))
    if changes:
        raise RunConflict(f"{run_dir} holds a run made with other params ({describe_changes(changes)}"
                          f"); running into it would mix their results: pass --overwrite "
                          "(overwrite=True) to delete its results and start it again, or use "
                          "another run_name (--set run_name=NAME)")


def _clear_run_dir(run_dir: Path, say) -> None:
    """Delete everything in ``run_dir`` but its lock (``--overwrite``)."""
    removed = 0
    for child in run_dir.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        removed += 1
    if removed:
        say(f"--overwrite: deleted the earlier results in {run_dir}", flush=True)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, log=print):
    """Hold the lock of a run folder for the block (creates the folder): one invocation at a time.

    The lock is ``<run_dir>/.lock`` (`accelnas.io.exclusive_lock`: released when the block ends, on
    success, exception or KeyboardInterrupt, and by the OS when the process dies); a record left by
    a process that died is taken over with a one-line notice. Yields this holder's record.

    Usage (e.g. for another command writing a run folder)::

        with run_lock(run_dir):
            ...

    Raises:
        RunLocked: another invocation holds the lock; the message names its pid and start time.
    """
    say = log or (lambda *a, **k: None)
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME

    def busy(holder: dict) -> RunLocked:
        return RunLocked(f"{run_dir} is in use by another run ({lock_holder(holder)}; lock {path}): "
                         "wait for it to end, or use another run_name (--set run_name=NAME)")

    with exclusive_lock(path, busy) as (info, stale):
        if stale:
            say(f"note: taking over the lock of {run_dir} left by a run that ended without "
                f"releasing it ({lock_holder(stale)})", flush=True)
        yield info


# ---------------------------------------------------------------------------------------------
# executed notebooks and the report

def _holds_error(path: Path) -> bool:
    """Whether an executed notebook failed (an error output, or papermill's exception flag)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if (nb.get("metadata", {}).get("papermill") or {}).get("exception"):
            return True
        return any(out.get("output_type") == "error"
                   for cell in nb["cells"] for out in cell.get("outputs") or ())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return True  # unreadable: nothing worth keeping


def _file_success(staged: Path, executed_dir: Path, nb: Path) -> Path:
    """Move a successful execution into ``executed/`` (replacing the earlier one and dropping an
    earlier failed copy)."""
    target = executed_dir / nb.name
    os.replace(staged, target)
    (executed_dir / f"{nb.stem}{FAILED_SUFFIX}").unlink(missing_ok=True)
    return target


def _file_failure(staged: Path, executed_dir: Path, nb: Path) -> tuple[Path, Path | None]:
    """Save a failed (or interrupted) execution: beside an earlier execution that did not fail,
    which is kept (``executed/<name>.failed.ipynb``), else in its place. Returns the failed
    copy's path (missing when papermill wrote nothing) and the kept execution (or ``None``)."""
    target = executed_dir / nb.name
    failed = executed_dir / f"{nb.stem}{FAILED_SUFFIX}"
    kept = target if target.is_file() and not _holds_error(target) else None
    dest = failed if kept is not None else target
    if staged.is_file():
        os.replace(staged, dest)
    else:  # nothing written this time: no earlier failure may pass for this one
        dest.unlink(missing_ok=True)
    if kept is None:
        failed.unlink(missing_ok=True)
    return dest, kept


def _write_report(run_dir: Path, manifest: dict, manifest_path: Path, say) -> Path | None:
    """Render ``report.html`` for the run and record it in the manifest; warn (never raise) when
    rendering fails, so the run's results (and the previous page) stay as they are."""
    try:
        from accelnas.report.html import render_report

        path = render_report(run_dir)  # atomic: the previous page stays until the new one is whole
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


def _keep_report(run_dir: Path, manifest: dict, manifest_path: Path, say) -> Path | None:
    """After a failure that kept an earlier execution: leave ``report.html`` as it is (it shows
    what executed/ holds) and record it."""
    path = run_dir / REPORT_NAME
    manifest["report"] = str(path) if path.is_file() else None
    _write_json(manifest_path, manifest)
    if path.is_file():
        say(f"report: {path} (kept: it shows the earlier executions)", flush=True)
        return path
    return None


# ---------------------------------------------------------------------------------------------
# the runner

def _history(previous: Mapping | None) -> list[dict]:
    """The invocations recorded by the manifest already in the run folder (a manifest from before
    ``history`` gives its one invocation)."""
    if not previous:
        return []
    if isinstance(previous.get("history"), list):
        return list(previous["history"])
    if previous.get("started"):
        return [{k: previous.get(k) for k in ("started", "finished", "params_file", "only",
                                              "overrides", "status", "git")}]
    return []


def _end(manifest: dict, status: str, **extra) -> None:
    """Record how this invocation ended, at the top level and in its ``history`` entry."""
    fields = dict(status=status, finished=_now(), **extra)
    manifest.update(fields)
    manifest["history"][-1].update(fields)


def run(params_path: str | os.PathLike, notebooks_dir: str | os.PathLike = "notebooks",
        outputs_root: str | os.PathLike = "outputs", overrides: Mapping[str, Any] | None = None,
        only: str | Iterable[str] | None = None, *, overwrite: bool = False,
        kernel_name: str = KERNEL_NAME, cwd: str | os.PathLike | None = None, log=print,
        report: bool = True) -> Path:
    """Execute the workbook notebooks in order for one params file.

    Args:
        params_path: the params YAML (validated before anything runs).
        notebooks_dir: folder with ``01_*.ipynb`` .. ``05_*.ipynb``.
        outputs_root: the run lands in ``<outputs_root>/<run_name>/``.
        overrides: ``{"dotted.key": value}`` applied on top of the file (and passed to the
            notebooks as the ``overrides`` parameter).
        only: run only these notebooks (``"01,02"`` or a list; numbers or names).
        overwrite: delete what the run folder holds (results, executed notebooks, report; its
            history is kept) and start it again, even when it was made with other params.
        kernel_name: Jupyter kernel the notebooks run in.
        cwd: working directory of the kernels (default: ``notebooks_dir``, as in JupyterLab).
        log: print-like callable for the progress lines (``print`` by default; ``None``: silent).
        report: render ``<run_dir>/report.html`` when the run ends (see the module docstring); a
            rendering error only warns.

    Returns:
        The run directory ``<outputs_root>/<run_name>`` (absolute).

    Raises:
        FileNotFoundError: params file, notebooks or dataset missing (raised before any notebook
            runs).
        accelnas.params.ParamsError: invalid params (raised before any notebook runs).
        ValueError: ``only`` selects no notebook.
        RunConflict: the run folder holds a run made with other params or notebooks.
        RunLocked: another invocation is running in the run folder.
        NotebookFailed: a notebook raised; later notebooks were not run.
    """
    params_path = Path(params_path).resolve()
    overrides = dict(overrides or {})
    p = load_params(params_path, overrides)
    run_name = _run_name(p, params_path)
    workbook = [nb.stem for nb in discover(notebooks_dir)]
    notebooks = discover(notebooks_dir, only)
    kernel_cwd = Path(cwd).resolve() if cwd is not None else Path(notebooks_dir).resolve()
    from accelnas.train.data import DATA_DIR_ENV
    if os.environ.get(DATA_DIR_ENV):  # kernels run in the notebooks' folder: a relative path would move
        os.environ[DATA_DIR_ENV] = str(Path(os.environ[DATA_DIR_ENV]).resolve())
    inputs = check_inputs(p, notebooks, kernel_cwd)

    import papermill  # not at module import: keeps `accelnas --help` fast

    say = log or (lambda *a, **k: None)
    run_dir = (Path(outputs_root) / run_name).resolve()
    with run_lock(run_dir, log=say):
        previous = _previous_manifest(run_dir, overwrite)
        if overwrite:
            _clear_run_dir(run_dir, say)
        else:
            check_rerun(previous, p, workbook, run_dir)
        return _execute(papermill, run_dir, notebooks, params_path=params_path, p=p,
                        overrides=overrides, only=only, overwrite=overwrite, workbook=workbook,
                        inputs=inputs, history=_history(previous), kernel_name=kernel_name,
                        kernel_cwd=kernel_cwd, say=say, report=report)


def _execute(papermill, run_dir: Path, notebooks: list[Path], *, params_path: Path, p: dict,
             overrides: dict, only, overwrite: bool, workbook: list[str], inputs: dict,
             history: list[dict], kernel_name: str, kernel_cwd: Path, say, report: bool) -> Path:
    """`run` once its checks passed, holding the run folder's lock: execute ``notebooks`` and keep
    the manifest (``history``: the earlier invocations) and the report up to date."""
    seed = p.get("seed")
    executed_dir = run_dir / EXECUTED_DIR
    staging = run_dir / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)  # left by a run that was killed
    staging.mkdir(parents=True)
    executed_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / MANIFEST_NAME

    env = dict(KERNEL_ENV)
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 4294967295:
        env["PYTHONHASHSEED"] = str(seed)
    started = _now()
    git = _git_info(Path(notebooks[0]).parent.resolve()) or _git_info(Path(__file__).parent)
    manifest: dict[str, Any] = {
        "run_name": run_dir.name,
        "status": "running",
        "started": started,
        "finished": None,
        "params_file": str(params_path),
        "overrides": overrides,
        "only": parse_only(only),
        "overwrite": overwrite,
        "params": p,
        "run_dir": str(run_dir),
        "workbook": workbook,
        "inputs": inputs,
        "git": git,
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
        "history": [*history, {"started": started, "finished": None,
                               "params_file": str(params_path), "only": parse_only(only),
                               "overrides": overrides, "overwrite": overwrite,
                               "status": "running", "git": git}],
    }
    _write_json(manifest_path, manifest)
    parameters = {"params_file": str(params_path), "run_dir": str(run_dir), "seed": seed,
                  "overrides": overrides}

    total = len(notebooks)
    try:
        for i, (nb, entry) in enumerate(zip(notebooks, manifest["notebooks"]), start=1):
            staged = staging / nb.name
            say(f"[{i}/{total}] {nb.stem} ...", end=" ", flush=True)
            entry.update(status="running", started=_now())
            _write_json(manifest_path, manifest)
            t0 = time.perf_counter()
            failure: tuple[str, str, int | None] | None = None
            try:
                with _kernel_env(env):
                    papermill.execute_notebook(
                        str(nb), str(staged), parameters=parameters, kernel_name=kernel_name,
                        language="python", progress_bar=False, log_output=False,
                        cwd=str(kernel_cwd), config=_kernel_config())
            except papermill.PapermillExecutionError as e:
                failure = (e.ename, e.evalue, e.exec_count)
            except KeyboardInterrupt:
                saved, kept = _file_failure(staged, executed_dir, nb)
                entry.update(status="interrupted", finished=_now(), executed=str(saved),
                             wall_s=round(time.perf_counter() - t0, 3))
                if kept is not None:
                    entry["kept"] = str(kept)
                _end(manifest, "interrupted")
                _write_json(manifest_path, manifest)
                say("interrupted", flush=True)
                raise
            except Exception as e:  # dead kernel, timeout, unreadable notebook, ...
                failure = (type(e).__name__, str(e), None)
            wall_s = time.perf_counter() - t0
            entry.update(finished=_now(), wall_s=round(wall_s, 3))
            if failure is not None:
                saved, kept = _file_failure(staged, executed_dir, nb)
                error = NotebookFailed(nb.stem, saved, *failure, kept=kept)
                entry.update(status="failed", executed=str(saved),
                             error={"ename": error.ename, "evalue": error.evalue,
                                    "cell": error.cell})
                if kept is not None:
                    entry["kept"] = str(kept)
                _end(manifest, "failed", failed_notebook=nb.stem)
                _write_json(manifest_path, manifest)
                say(f"FAILED ({wall_s:.1f} s)", flush=True)
                if report and kept is None:
                    _write_report(run_dir, manifest, manifest_path, say)
                elif report:
                    _keep_report(run_dir, manifest, manifest_path, say)
                raise error
            _file_success(staged, executed_dir, nb)
            entry["status"] = "ok"
            _write_json(manifest_path, manifest)
            say(f"ok ({wall_s:.1f} s)", flush=True)
    except BaseException:
        if manifest["status"] == "running":  # not a notebook's failure: an error of the runner
            _end(manifest, "error")
            _write_json(manifest_path, manifest)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    _end(manifest, "ok")
    _write_json(manifest_path, manifest)
    if report:
        _write_report(run_dir, manifest, manifest_path, say)
    return run_dir
