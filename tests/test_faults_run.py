"""Faults around `accelnas run` (project issue 13): reruns with other params are refused, a failing
rerun keeps the earlier executions and report, the manifest keeps every invocation, inputs are
checked before the first notebook, and a run folder is locked while a run uses it.

Notebooks are not executed by a kernel here: ``fake_papermill`` writes the executed copy itself
(one stdout output naming the notebook, a serial number and the seed), so every test takes well
under a second (the lock test starts one Python process).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from accelnas import cli, runner, schema
from accelnas.train import data
from accelnas.runner import NotebookFailed, RunConflict, RunLocked

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"

PARAMETERS = 'params_file = ""\nrun_dir = ""\nseed = 0\noverrides = {}'


def make_notebook(path: Path, source: str = "x = 1") -> Path:
    """A notebook: the tagged parameters cell, then one cell of ``source`` (``FAIL``, ``CRASH`` or
    ``INTERRUPT`` in it steer `fake_papermill`)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}))
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# Notebook {path.stem}"))
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """papermill.execute_notebook without a kernel; returns the names of the notebooks executed.

    The executed copy gets a stdout output ``ran <name> #<serial> seed=<seed>``. A notebook whose
    source holds FAIL is written with an error output and raises like papermill; CRASH raises
    before anything is written (a dead kernel); INTERRUPT is written, then interrupted.
    """
    import papermill

    executed: list[str] = []

    def execute(src, dst, parameters=None, **kwargs):
        executed.append(Path(src).stem)
        nb = nbformat.read(src, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        if "CRASH" in text:
            raise RuntimeError("Kernel died before replying")
        cell = nb.cells[-1]
        cell.outputs = [nbformat.v4.new_output(
            "stream", name="stdout",
            text=f"ran {Path(src).stem} #{len(executed)} seed={parameters['seed']}\n")]
        if "FAIL" in text:
            cell.outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom",
                                                       traceback=["ValueError: boom"]))
        nbformat.write(nb, dst)
        if "FAIL" in text:
            raise papermill.PapermillExecutionError(2, 1, text, "ValueError", "boom", [])
        if "INTERRUPT" in text:
            raise KeyboardInterrupt
        return nb

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return executed


@pytest.fixture
def nbs(tmp_path) -> Path:
    """Notebooks 01_a, 02_b, 03_c (03 reads the dataset)."""
    folder = tmp_path / "nbs"
    for name in ("01_a", "02_b", "03_c"):
        make_notebook(folder / f"{name}.ipynb")
    return folder


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "out"


def run(nbs: Path, out: Path, **kwargs) -> Path:
    return runner.run(SMOKE, notebooks_dir=nbs, outputs_root=out, log=None, **kwargs)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def output_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[0].startswith("accelnas: error: ")
    return err


# ---------------------------------------------------------------------------------------------
# 1. a rerun with other params or notebooks is refused before anything runs

def test_rerun_with_another_seed_is_refused_before_anything_runs(nbs, out, calls):
    run_dir = run(nbs, out)
    before = (run_dir / "manifest.json").read_bytes()
    executed = {p.name: p.read_bytes() for p in (run_dir / "executed").iterdir()}
    assert len(calls) == 3

    with pytest.raises(RunConflict) as info:  # --only 01 --set seed=7 over a seed-0 run
        run(nbs, out, only="01", overrides={"seed": 7})
    msg = str(info.value)
    assert "\n" not in msg and str(run_dir) in msg
    assert "seed: 0 -> 7" in msg and "--overwrite" in msg and "run_name" in msg
    assert len(calls) == 3  # nothing executed
    assert (run_dir / "manifest.json").read_bytes() == before
    assert {p.name: p.read_bytes() for p in (run_dir / "executed").iterdir()} == executed

    run(nbs, out, only="02", overrides={"seed": 0})  # same params: a rerun is fine
    assert calls[-1] == "02_b"
    assert isinstance(info.value, ValueError)  # the CLI maps it to exit 2


def test_conflict_names_at_most_five_keys(nbs, out, calls):
    run(nbs, out, only="01")
    changes = {"seed": 3, "samples": 20, "proxy.epochs": 2, "proxy.subset": 256,
               "search.trials": 4, "supernet.epochs": 2, "stage2.epochs": 2}
    with pytest.raises(RunConflict) as info:
        run(nbs, out, only="01", overrides=changes)
    msg = str(info.value)
    assert "seed: 0 -> 3" in msg and "samples: 50 -> 20" in msg and "proxy.epochs: 1 -> 2" in msg
    assert "and 2 more" in msg and "stage2.epochs" not in msg
    assert len(calls) == 1
    assert schema.describe_changes([("a.b", [1, 2], [1]), ("c", schema._UNSET, "x")]) == \
        "a.b: [1, 2] -> [1]; c: (unset) -> x"


def test_another_set_of_notebooks_is_a_conflict(nbs, out, calls):
    run(nbs, out, only="01")
    make_notebook(nbs / "04_d.ipynb")
    with pytest.raises(RunConflict, match=r"notebooks: 01_a, 02_b, 03_c -> 01_a, 02_b, 03_c, 04_d"):
        run(nbs, out, only="01")
    assert calls == ["01_a"]


def test_overwrite_deletes_the_earlier_results_and_starts_again(nbs, out, calls):
    run_dir = run(nbs, out)
    (run_dir / "trials.parquet").write_text("seed 0 results")
    run_dir = run(nbs, out, only="01", overrides={"seed": 7}, overwrite=True)
    assert not (run_dir / "trials.parquet").exists()
    assert sorted(p.name for p in (run_dir / "executed").iterdir()) == ["01_a.ipynb"]
    assert "seed=7" in output_text(run_dir / "executed" / "01_a.ipynb")
    m = manifest(run_dir)
    assert m["params"]["seed"] == 7 and m["overwrite"] is True
    assert [(h["status"], h["overwrite"]) for h in m["history"]] == [("ok", False), ("ok", True)]


def test_cli_refuses_with_one_line_and_takes_overwrite(nbs, out, calls, capsys):
    argv = ["run", str(SMOKE), "--notebooks", str(nbs), "--outputs", str(out)]
    assert cli.main([*argv, "--only", "01"]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--only", "01", "--set", "seed=7"]) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "seed: 0 -> 7" in err[0] and "--overwrite" in err[0]
    assert cli.main([*argv, "--only", "01", "--set", "seed=7", "--overwrite"]) == 0
    assert manifest(out / "smoke")["params"]["seed"] == 7


# ---------------------------------------------------------------------------------------------
# 2. a failing rerun keeps the earlier executions and report.html

def test_failing_rerun_keeps_the_earlier_execution_and_report(nbs, out, calls):
    run_dir = run(nbs, out)
    executed = run_dir / "executed"
    good_02 = (executed / "02_b.ipynb").read_bytes()
    page = (run_dir / "report.html").read_bytes()

    make_notebook(nbs / "02_b.ipynb", "FAIL")
    with pytest.raises(NotebookFailed) as info:
        run(nbs, out)
    err = info.value
    failed = executed / "02_b.failed.ipynb"
    assert err.executed_path == failed and failed.is_file() and err.kept == executed / "02_b.ipynb"
    assert f"open {failed}" in str(err) and str(executed / "02_b.ipynb") in str(err)
    assert "\n" not in str(err)
    assert (executed / "02_b.ipynb").read_bytes() == good_02  # the earlier good copy stays
    assert "ran 01_a #4" in output_text(executed / "01_a.ipynb")  # 01 succeeded: replaced
    assert "ran 03_c #3" in output_text(executed / "03_c.ipynb")  # 03 did not run: kept
    assert (run_dir / "report.html").read_bytes() == page
    m = manifest(run_dir)
    assert m["status"] == "failed" and m["report"] == str(run_dir / "report.html")
    assert m["notebooks"][1]["executed"] == str(failed)
    assert m["notebooks"][1]["kept"] == str(executed / "02_b.ipynb")
    assert not (run_dir / ".staging").exists()

    make_notebook(nbs / "02_b.ipynb", "x = 2")  # fixed: the new execution replaces both
    run(nbs, out)
    assert not failed.exists()
    assert "ran 02_b #7" in output_text(executed / "02_b.ipynb")
    assert (run_dir / "report.html").read_bytes() != page


def test_a_failure_without_an_earlier_execution_takes_its_place(nbs, out, calls):
    make_notebook(nbs / "02_b.ipynb", "FAIL")
    with pytest.raises(NotebookFailed) as info:
        run(nbs, out)
    run_dir = info.value.executed_path.parents[1]
    assert info.value.executed_path == run_dir / "executed" / "02_b.ipynb"
    assert info.value.kept is None
    page = (run_dir / "report.html").read_text()
    assert 'class="notebook failed"' in page  # the report shows where it stopped
    with pytest.raises(NotebookFailed) as info:  # an earlier failure is not kept
        run(nbs, out)
    assert info.value.kept is None and "#4" in output_text(info.value.executed_path)
    assert not (run_dir / "executed" / "02_b.failed.ipynb").exists()


def test_a_crash_or_interrupt_keeps_the_earlier_execution(nbs, out, calls):
    run_dir = run(nbs, out)
    good_02 = (run_dir / "executed" / "02_b.ipynb").read_bytes()

    make_notebook(nbs / "02_b.ipynb", "CRASH")
    with pytest.raises(NotebookFailed, match="RuntimeError: Kernel died.*no executed notebook "
                                             "was written; the earlier execution stays"):
        run(nbs, out)
    assert (run_dir / "executed" / "02_b.ipynb").read_bytes() == good_02

    make_notebook(nbs / "02_b.ipynb", "INTERRUPT")
    with pytest.raises(KeyboardInterrupt):
        run(nbs, out)
    assert (run_dir / "executed" / "02_b.ipynb").read_bytes() == good_02
    assert "ran 02_b" in output_text(run_dir / "executed" / "02_b.failed.ipynb")
    m = manifest(run_dir)
    assert m["status"] == "interrupted" and m["history"][-1]["status"] == "interrupted"
    assert not (run_dir / ".staging").exists()
    assert (run_dir / ".lock").read_text() == ""  # released
    with runner.run_lock(run_dir, log=None):
        pass


# ---------------------------------------------------------------------------------------------
# 3. manifest.json keeps every invocation

def test_manifest_keeps_the_history_of_invocations(nbs, out, calls):
    run_dir = run(nbs, out)
    run(nbs, out, only="02", overrides={"seed": 0})
    make_notebook(nbs / "03_c.ipynb", "FAIL")
    with pytest.raises(NotebookFailed):
        run(nbs, out, only="3")
    m = manifest(run_dir)
    history = m["history"]
    assert [h["status"] for h in history] == ["ok", "ok", "failed"]
    assert [h["only"] for h in history] == [None, ["02"], ["3"]]
    assert [h["overrides"] for h in history] == [{}, {"seed": 0}, {}]
    assert history[2]["failed_notebook"] == "03_c"
    assert all(h["started"] and h["finished"] and "git" in h for h in history)
    assert all(h["params_file"] == str(SMOKE) for h in history)
    # the top-level fields still describe the latest invocation
    assert m["status"] == "failed" and m["only"] == ["3"] and m["failed_notebook"] == "03_c"
    assert [nb["name"] for nb in m["notebooks"]] == ["03_c"]
    assert m["started"] == history[2]["started"]


def test_history_starts_from_a_manifest_written_before_it(nbs, out, calls):
    run_dir = run(nbs, out, only="01")
    old = manifest(run_dir)
    for key in ("history", "workbook", "overwrite", "inputs"):
        old.pop(key)
    (run_dir / "manifest.json").write_text(json.dumps(old))
    run(nbs, out, only="02")
    history = manifest(run_dir)["history"]
    assert len(history) == 2 and history[0]["started"] == old["started"]
    assert history[0]["status"] == "ok" and history[0]["only"] == ["01"]


# ---------------------------------------------------------------------------------------------
# 4. inputs are checked before the first notebook

@pytest.fixture
def no_cifar(tmp_path, monkeypatch) -> Path:
    """No CIFAR-10 anywhere: ACCELNAS_DATA_DIR points at an empty folder, KERAS_HOME too, and no
    shared folder beside the checkout."""
    empty = tmp_path / "nodata"
    empty.mkdir()
    monkeypatch.setenv("ACCELNAS_DATA_DIR", str(empty))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "no_shared" / "data")
    return empty


def test_missing_dataset_fails_before_the_first_notebook(nbs, out, calls, no_cifar, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        run(nbs, out, overrides={"dataset": "cifar10"})
    msg = str(info.value)
    assert "dataset 'cifar10' not found. Tried:" in msg
    assert str(no_cifar / "cifar10.npz") in msg and "keras cache" in msg
    assert "Set ACCELNAS_DATA_DIR" in msg and "dataset=synthetic" in msg
    assert calls == [] and not out.exists()

    monkeypatch.delenv("ACCELNAS_DATA_DIR")
    with pytest.raises(FileNotFoundError, match="(?s)ACCELNAS_DATA_DIR is not set.*shared folder beside the checkout"):
        run(nbs, out, only="1,3", overrides={"dataset": "cifar10"})
    assert calls == []

    run(nbs, out, only="01,02", overrides={"dataset": "cifar10"})  # they do not read data
    assert calls == ["01_a", "02_b"]


def test_cli_prints_the_whole_dataset_message(nbs, out, calls, no_cifar, capsys):
    code = cli.main(["run", str(SMOKE), "--notebooks", str(nbs), "--outputs", str(out),
                     "--set", "dataset=cifar10"])
    assert code == 2
    err = error_lines(capsys)
    assert err[0] == "accelnas: error: dataset 'cifar10' not found. Tried:"
    text = "\n".join(err)
    assert str(no_cifar / "cifar10.npz") in text and "keras cache" in text
    assert err[-1].strip().startswith("Set ACCELNAS_DATA_DIR to a folder holding cifar10.npz")
    assert calls == []


def test_locate_dataset_finds_what_the_loader_would(tmp_path, no_cifar):
    assert data.locate_dataset("synthetic") == "synthetic"
    (no_cifar / "cifar10.npz").write_bytes(b"")
    assert data.locate_dataset("cifar10") == str(no_cifar / "cifar10.npz")
    (no_cifar / "cifar10.npz").unlink()
    cache = tmp_path / "keras" / "datasets" / "cifar-10-batches-py"
    cache.mkdir(parents=True)
    assert data.locate_dataset("cifar10") == f"keras cache {cache}"

    with pytest.raises(FileNotFoundError, match=r"imgs does not exist.*relative to"):
        data.locate_dataset("folder:imgs", cwd=tmp_path)
    (tmp_path / "imgs" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="neither test/ nor val/"):
        data.locate_dataset("folder:imgs", cwd=tmp_path)
    (tmp_path / "imgs" / "val").mkdir()
    assert data.locate_dataset("folder:imgs", cwd=tmp_path) == str(tmp_path / "imgs")

    no_tf = ("import sys\nfrom accelnas.train import data\nfor spec in ('cifar10', 'folder:x'):\n"
             "    try:\n        data.locate_dataset(spec)\n    except FileNotFoundError:\n"
             "        pass\nassert not {'tensorflow', 'keras'} & set(sys.modules), 'imported TF'")
    subprocess.run([sys.executable, "-c", no_tf], check=True, cwd=tmp_path)


def test_missing_accelerator_yaml_fails_before_the_first_notebook(nbs, out, calls, tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(SMOKE.read_text().replace("accelerators: [coral, pixel4]",
                                             "accelerators: [coral, hw/pixel9.yaml]"))
    from accelnas.params import ParamsError

    with pytest.raises(ParamsError, match="pixel9.yaml"):
        runner.run(bad, notebooks_dir=nbs, outputs_root=out, log=None)
    assert calls == [] and not out.exists()


# ---------------------------------------------------------------------------------------------
# 5. one run per run folder at a time

def test_a_locked_run_folder_is_refused(nbs, out, calls, capsys):
    run_dir = out / "smoke"
    with runner.run_lock(run_dir, log=None) as holder:
        with pytest.raises(RunLocked) as info:
            run(nbs, out)
        msg = str(info.value)
        assert f"pid {os.getpid()}" in msg and holder["started"] in msg and "\n" not in msg
        assert cli.main(["run", str(SMOKE), "--notebooks", str(nbs), "--outputs", str(out)]) == 2
        assert f"pid {os.getpid()}" in error_lines(capsys)[0]
    assert calls == []
    run(nbs, out)  # released
    assert len(calls) == 3


HOLD_LOCK = """
import sys, time
from accelnas import runner
with runner.run_lock(sys.argv[1], log=None):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_lock_held_by_another_process_then_left_by_it(nbs, out, calls):
    run_dir = out / "smoke"
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"pid {child.pid} "):
            run(nbs, out)
    finally:
        child.send_signal(signal.SIGKILL)  # dies holding it: the OS drops the flock, the record stays
        child.wait()
    assert calls == []
    lines = []
    runner.run(SMOKE, notebooks_dir=nbs, outputs_root=out,
               log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    notice = [line for line in lines if "taking over the lock" in line]
    assert len(notice) == 1 and f"pid {child.pid}" in notice[0]
    assert (run_dir / ".lock").read_text() == ""


def test_the_lock_is_released_after_a_failure(nbs, out, calls):
    make_notebook(nbs / "01_a.ipynb", "FAIL")
    with pytest.raises(NotebookFailed):
        run(nbs, out)
    with runner.run_lock(out / "smoke", log=None):
        pass
