"""The papermill runner on tiny notebooks in tmp_path (each execution starts a kernel, ~2 s)."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from accelnas import runner
from accelnas.runner import NotebookFailed

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"

PARAMETERS = 'params_file = ""\nrun_dir = ""\nseed = 0\noverrides = {}'


def make_notebook(path: Path, *cells: str) -> Path:
    """A notebook whose first cell is the tagged parameters cell, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def params_api():
    from accelnas import params

    return params


@pytest.fixture
def params_file(params_api) -> Path:
    if not SMOKE.is_file():
        pytest.skip(f"{SMOKE} not present")
    return SMOKE


def read_manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


# ---------------------------------------------------------------------------------------------
# discovery (no kernel)

def test_discover_orders_and_filters(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "06_extra.ipynb", "scratch.ipynb", "05_e.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.discover(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "05_e.ipynb"]
    assert [p.stem for p in runner.discover(tmp_path, "5,1")] == ["01_a", "05_e"]
    assert [p.stem for p in runner.discover(tmp_path, ["02_b.ipynb"])] == ["02_b"]
    with pytest.raises(ValueError, match="03.*01_a, 02_b, 05_e"):
        runner.discover(tmp_path, "03")
    with pytest.raises(FileNotFoundError):
        runner.discover(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        runner.discover(tmp_path / "empty")


def test_notebook_failed_message_is_one_line(tmp_path):
    executed = tmp_path / "02_latency_model.ipynb"
    e = NotebookFailed("02_latency_model", executed, "DeadKernelError", "Kernel died")
    assert "no executed notebook was written" in str(e)
    executed.write_text("{}")
    e = NotebookFailed("02_latency_model", executed, "ValueError", "bad value\nmore detail", cell=3)
    msg = str(e)
    assert "\n" not in msg
    assert "02_latency_model failed in cell [3]: ValueError: bad value" in msg
    assert f"open {executed}" in msg


# ---------------------------------------------------------------------------------------------
# params are validated before anything runs (no kernel)

def test_bad_params_run_nothing(tmp_path, params_file, params_api):
    marker = tmp_path / "ran.txt"
    nbs = tmp_path / "nbs"
    make_notebook(nbs / "01_touch.ipynb", f"open({str(marker)!r}, 'w').write('x')")
    bad = tmp_path / "bad.yaml"
    bad.write_text(params_file.read_text() + "\nnot_a_params_key: 1\n")
    with pytest.raises(params_api.ParamsError, match="not_a_params_key"):
        runner.run(bad, notebooks_dir=nbs, outputs_root=tmp_path / "out")
    with pytest.raises(params_api.ParamsError, match="seed"):
        runner.run(params_file, notebooks_dir=nbs, outputs_root=tmp_path / "out",
                   overrides={"seed": -1})
    with pytest.raises(FileNotFoundError):
        runner.run(tmp_path / "missing.yaml", notebooks_dir=nbs, outputs_root=tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_bad_only_runs_nothing(tmp_path, params_file):
    nbs = tmp_path / "nbs"
    make_notebook(nbs / "01_a.ipynb", "x = 1")
    with pytest.raises(ValueError, match="--only"):
        runner.run(params_file, notebooks_dir=nbs, outputs_root=tmp_path / "out", only="04")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# execution (starts kernels)

def test_run_executes_in_order_and_writes_manifest(tmp_path, params_file, params_api, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCELNAS_DATA_DIR", "data")   # relative to where `accelnas run` starts
    nbs = tmp_path / "nbs"
    make_notebook(
        nbs / "01_first.ipynb",
        "import json, os, pathlib\n"
        "info = dict(params_file=params_file, run_dir=run_dir, seed=seed, overrides=overrides,\n"
        "            tf_log=os.environ.get('TF_CPP_MIN_LOG_LEVEL'), cwd=os.getcwd(),\n"
        "            data_dir=os.environ.get('ACCELNAS_DATA_DIR'))\n"
        "pathlib.Path(run_dir, 'first.json').write_text(json.dumps(info))")
    make_notebook(nbs / "02_second.ipynb",
                  "import json, pathlib\nassert pathlib.Path(run_dir, 'first.json').exists()\n"
                  "pathlib.Path(run_dir, 'second.json').write_text(json.dumps([seed, overrides]))")
    make_notebook(nbs / "scratch.ipynb", "raise RuntimeError('not part of the run')")

    expected = params_api.load(params_file)
    run_dir = runner.run(params_file, notebooks_dir=nbs, outputs_root=tmp_path / "out")

    assert run_dir == (tmp_path / "out" / expected["run_name"]).resolve()
    info = json.loads((run_dir / "first.json").read_text())
    assert info["params_file"] == str(params_file.resolve())
    assert info["run_dir"] == str(run_dir)
    assert info["seed"] == expected["seed"]
    assert info["overrides"] == {}
    assert info["tf_log"] is not None
    assert Path(info["cwd"]) == nbs.resolve()
    assert info["data_dir"] == str(tmp_path.resolve() / "data")
    assert json.loads((run_dir / "second.json").read_text()) == [expected["seed"], {}]
    executed = sorted(p.name for p in (run_dir / "executed").iterdir())
    assert executed == ["01_first.ipynb", "02_second.ipynb"]
    injected = nbformat.read(run_dir / "executed" / "01_first.ipynb", as_version=4).cells[1]
    assert "injected-parameters" in injected.metadata.get("tags", [])

    m = read_manifest(run_dir)
    assert m["status"] == "ok" and m["started"] and m["finished"]
    assert m["params_file"] == str(params_file.resolve())
    assert m["params"] == json.loads(json.dumps(expected, default=str))
    assert [nb["name"] for nb in m["notebooks"]] == ["01_first", "02_second"]
    assert all(nb["status"] == "ok" and nb["wall_s"] > 0 for nb in m["notebooks"])
    assert m["packages"]["papermill"] and m["python"].count(".") == 2
    assert "git" in m

    out = capsys.readouterr().out
    assert "[1/2] 01_first ... ok (" in out and "[2/2] 02_second ... ok (" in out

    # --only re-runs one notebook into the same run folder; overrides reach params and notebooks
    # (with the same params: another seed is refused, see tests/test_faults_run.py)
    seed = expected["seed"]
    runner.run(params_file, notebooks_dir=nbs, outputs_root=tmp_path / "out", only="2",
               overrides={"seed": seed}, log=None)
    assert json.loads((run_dir / "second.json").read_text()) == [seed, {"seed": seed}]
    m = read_manifest(run_dir)
    assert m["status"] == "ok" and m["only"] == ["2"]
    assert m["params"]["seed"] == seed and m["overrides"] == {"seed": seed}
    assert [nb["name"] for nb in m["notebooks"]] == ["02_second"]


def test_failing_notebook_stops_the_run(tmp_path, params_file, params_api, capsys):
    stale = tmp_path / "out" / params_api.load(params_file)["run_name"] / "executed" / "03_never.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # from an earlier run: must not pass for this run's result
    nbs = tmp_path / "nbs"
    make_notebook(nbs / "01_ok.ipynb", "import pathlib\npathlib.Path(run_dir, 'one.txt').write_text('1')")
    make_notebook(nbs / "02_broken.ipynb", "x = 1", "raise ValueError('boom 42')")
    make_notebook(nbs / "03_never.ipynb", "import pathlib\npathlib.Path(run_dir, 'three.txt').write_text('3')")

    with pytest.raises(NotebookFailed) as info:
        runner.run(params_file, notebooks_dir=nbs, outputs_root=tmp_path / "out")
    err = info.value
    assert err.notebook == "02_broken" and err.ename == "ValueError" and err.evalue == "boom 42"
    assert "02_broken" in str(err) and str(err.executed_path) in str(err)
    assert err.executed_path.is_file()  # papermill saved it with the traceback

    run_dir = err.executed_path.parents[1]
    assert (run_dir / "one.txt").read_text() == "1"
    assert (run_dir / "executed" / "01_ok.ipynb").is_file()
    assert stale.read_text() == "{}"  # an earlier run's copy stays until 03 runs again
    assert not (run_dir / "three.txt").exists()

    m = read_manifest(run_dir)
    assert m["status"] == "failed" and m["failed_notebook"] == "02_broken"
    assert [nb["status"] for nb in m["notebooks"]] == ["ok", "failed", "pending"]
    assert m["notebooks"][1]["error"]["ename"] == "ValueError"
    assert m["notebooks"][1]["error"]["evalue"] == "boom 42"
    assert m["notebooks"][1]["wall_s"] > 0
    assert "[2/3] 02_broken ... FAILED (" in capsys.readouterr().out
