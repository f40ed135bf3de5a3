"""Faults of the search on disk and on the console (issue 13): damaged trial and oracle files,
two searches on one run folder, distributed workers' log lines, the progress bar's line.

Like tests/test_search.py, the searches use a cheap deterministic objective (`macs_objective`)
through `run_search(train_fn=...)`; CLI calls only meet searches that are refused or already done,
so nothing trains a proxy."""
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelnas import cli
from accelnas import params as params_mod
from accelnas.search.trials import trials_frame
from accelnas.search.tuner import SearchFolderError, run_search, search_lock
from accelnas.space.graph import from_arch

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"
# what the CLI calls below search: smoke.yaml with these overrides and --controller random
CLI_SET = {"search.trials": 3, "search.evaluator": "standalone", "search.per_accelerator": False}


@pytest.fixture(scope="module")
def smoke():
    return params_mod.load(SMOKE)


def macs_objective(arch, data, seed):
    """More MACs, more accuracy (saturating): a real trade-off against latency."""
    return {"accuracy": float(np.clip(np.log10(from_arch(arch).macs) / 11.0, 0, 1))}


def search(p, run_dir, **kw):
    kw.setdefault("train_fn", macs_objective)
    kw.setdefault("controller", "random")
    return run_search(p, run_dir, progress=False, log=None, **kw)


def counting(calls):
    def train(arch, data, seed):
        calls.append(arch.encode())
        return macs_objective(arch, data, seed)
    return train


def run_cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def cli_search(outputs, *extra):
    sets = [a for k, v in CLI_SET.items() for a in ("--set", f"{k}={v}")]
    return run_cli("search", str(SMOKE), "--outputs", str(outputs), "--controller", "random", *sets, *extra)


# ------------------------------------------------------------------------- damaged trial files

def _cut(f: Path) -> None:
    text = f.read_text()
    f.write_text(text[:len(text) // 2])  # a write cut short by a crash or a full disk


def _nan_accuracy(f: Path) -> None:
    rec = json.loads(f.read_text())
    rec["accuracy"] = float("nan")
    f.write_text(json.dumps(rec))


DAMAGE = {
    "trial.json cut short": ("trial.json", _cut, "trial.json: not valid JSON"),
    "trial.json lost": ("trial.json", Path.unlink, "trial.json: missing"),
    "result.json lost": ("result.json", Path.unlink, "result.json: missing"),
    "result.json cut short": ("result.json", _cut, "result.json: not valid JSON"),
    "result.json NaN accuracy": ("result.json", _nan_accuracy, "result.json: completed trial with accuracy nan"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_trial_is_named_set_aside_and_run_again(smoke, tmp_path, damage):
    file, spoil, says = DAMAGE[damage]
    before = search(smoke, tmp_path, trials=4)
    project = tmp_path / "search" / "random"
    spoil(project / "trial_1" / file)

    # the summary counts only trials that really completed
    frame = trials_frame(tmp_path / "search")
    assert (frame.status == "completed").sum() == 3
    bad = frame[frame.trial_id == "1"]
    assert list(bad.status) == ["damaged"] and bad.reason.iloc[0].startswith(says)

    calls, lines = [], []
    after = run_search(smoke, tmp_path, controller="random", trials=4, train_fn=counting(calls),
                       progress=False, log=lines.append)
    # one log line names the file and what was wrong
    named = [ln for ln in lines if str(project / "trial_1" / file) in ln]
    assert len(named) == 1 and says in named[0] and "damaged" in named[0], lines
    aside = list((project / "damaged").glob("trial_1-*"))
    assert len(aside) == 1 and named[0].endswith("the trial will be run again")
    # the oracle forgot it: it is proposed again (the random controller draws the same), trained once
    assert len(calls) == 1
    assert len(after) == 4 and (after.status == "completed").all()
    assert after.reward.notna().all() and np.isfinite(after.reward).all() and after.arch.notna().all()
    assert dict(zip(after.trial_id, after.arch)) == dict(zip(before.trial_id, before.arch))
    assert list(after.trial_id) == ["0", "2", "3", "1"]  # in completion order
    state = json.loads((project / "oracle.json").read_text())
    assert sorted(state["end_order"]) == ["0", "1", "2", "3"]
    # and the next resume finds nothing to redo
    calls.clear()
    lines.clear()
    again = run_search(smoke, tmp_path, controller="random", trials=4, train_fn=counting(calls),
                       progress=False, log=lines.append)
    assert calls == [] and not any("damaged" in ln for ln in lines) and len(again) == 4


def test_a_damaged_trial_of_an_evolution_search_refills_the_budget(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.population": 2, "search.sample_size": 2})
    search(p, tmp_path, controller="evolution", trials=5)
    _cut(tmp_path / "search" / "evolution" / "trial_2" / "trial.json")
    calls = []
    after = search(p, tmp_path, controller="evolution", trials=5, train_fn=counting(calls))
    assert len(calls) == 1
    assert len(after) == 5 and (after.status == "completed").all() and after.arch.is_unique
    assert sorted(after.trial_id) == ["0", "1", "2", "3", "4"]
    # the budget can still be raised afterwards; new ids do not collide with the rerun one
    more = search(p, tmp_path, controller="evolution", trials=7)
    assert len(more) == 7 and more.trial_id.is_unique and (more.status == "completed").all()


def test_a_trial_damaged_while_it_ran_is_run_again(smoke, tmp_path):
    """Killed in the middle of a trial whose folder is then lost: the trial keras-tuner has as
    ongoing is forgotten and proposed again (no KeyError from keras-tuner's reload)."""
    class Killed(BaseException):
        pass

    n = []

    def dies_at_third(arch, data, seed):
        n.append(1)
        if len(n) == 3:
            raise Killed()
        return macs_objective(arch, data, seed)

    with pytest.raises(Killed):
        search(smoke, tmp_path, trials=4, train_fn=dies_at_third)
    project = tmp_path / "search" / "random"
    (project / "trial_2" / "trial.json").unlink()
    calls = []
    after = search(smoke, tmp_path, trials=4, train_fn=counting(calls))
    assert len(calls) == 2 and len(after) == 4 and (after.status == "completed").all()


@pytest.mark.parametrize("damage", ["cut short", "lost", "not an oracle"])
def test_a_damaged_oracle_json_is_one_line_naming_the_file_and_the_fix(smoke, tmp_path, damage):
    p = params_mod.override(smoke, CLI_SET)
    run_dir = tmp_path / "smoke"
    search(p, run_dir)
    oracle = run_dir / "search" / "random" / "oracle.json"
    {"cut short": _cut, "lost": Path.unlink, "not an oracle": lambda f: f.write_text("[]")}[damage](oracle)
    with pytest.raises(SearchFolderError, match="oracle.json") as e:
        search(p, run_dir)
    assert "restore it" in str(e.value) and "--overwrite" in str(e.value)
    code, out, err = cli_search(tmp_path)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("accelnas: error: ") and str(oracle) in err, err
    assert "Traceback" not in err and "JSONDecodeError" not in err
    assert len(list(oracle.parent.glob("trial_*"))) == 3  # nothing was moved or deleted


def test_a_damaged_search_config_names_the_file(smoke, tmp_path):
    search(smoke, tmp_path, trials=2)
    f = tmp_path / "search" / "random" / "search_config.json"
    _cut(f)
    with pytest.raises(SearchFolderError, match="search_config.json.*not valid JSON.*delete it"):
        search(smoke, tmp_path, trials=2)
    f.unlink()
    assert len(search(smoke, tmp_path, trials=2)) == 2


def test_a_damaged_or_lost_tuner_file_does_not_restart_the_search(smoke, tmp_path):
    """keras-tuner reloads a project only when its tuner file (tuner0.json) is there: without it a
    resume would start at trial 0 again and overwrite the finished trials."""
    before = search(smoke, tmp_path, trials=3)
    tuner_file = tmp_path / "search" / "random" / "tuner0.json"
    tuner_file.write_text('{"cut')
    calls = []
    assert list(search(smoke, tmp_path, trials=3, train_fn=counting(calls)).arch) == list(before.arch)
    tuner_file.unlink()
    assert list(search(smoke, tmp_path, trials=3, train_fn=counting(calls)).arch) == list(before.arch)
    assert calls == []


# ------------------------------------------------------------------------- one search per folder

HOLD = """
import sys, time
from accelnas.search.tuner import search_lock
with search_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(300)
"""


def _holder(search_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(search_dir)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    line = proc.stdout.readline().strip()
    if line != "held":
        proc.kill()
        proc.wait()
        pytest.fail(f"the lock holder did not start: {line!r}")
    return proc


def test_a_second_search_on_the_run_folder_is_refused(smoke, tmp_path):
    p = params_mod.override(smoke, CLI_SET)
    run_dir = tmp_path / "smoke"
    search(p, run_dir)  # a search to resume
    proc = _holder(run_dir / "search")
    try:
        with pytest.raises(SearchFolderError, match=f"another search is running on .*pid {proc.pid} on "):
            search(p, run_dir)
        code, out, err = cli_search(tmp_path)
        assert code == 2 and err.count("\n") == 1, (out, err)
        assert f"pid {proc.pid}" in err and "started 20" in err and "KERASTUNER_TUNER_ID" in err
        # nothing was touched, and overwrite is refused too
        with pytest.raises(SearchFolderError):
            search(p, run_dir, overwrite=True)
        assert len(trials_frame(run_dir / "search")) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # a killed holder leaves no stale lock: the next search takes it over
    assert len(search(p, run_dir, trials=4)) == 4
    # and a finished search released it in the same process too
    with search_lock(run_dir / "search") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.read_text() == ""


def test_the_lock_is_held_for_the_whole_search(smoke, tmp_path):
    seen = []

    def peek(arch, data, seed):
        seen.append(json.loads((tmp_path / "search" / "search.lock").read_text()))
        return macs_objective(arch, data, seed)

    search(smoke, tmp_path, trials=2, train_fn=peek)
    assert [s["pid"] for s in seen] == [os.getpid()] * 2
    assert {"host", "started"} <= set(seen[0])


# ------------------------------------------------------------------------- distributed workers

def test_a_worker_names_its_controller(smoke, tmp_path, monkeypatch):
    """A worker's oracle is keras-tuner's OracleClient (no ``controller``): its result.json and log
    line still name the controller. run_trial itself does not talk to the chief."""
    import keras_tuner

    from accelnas.search.tuner import NASTuner, _trial_line, setup

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner1")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(_free_port()))
    su = setup(smoke, controller="evolution", trials=2)
    tuner = NASTuner(su.oracle, screen=su.screen, reward=su.reward, train_fn=macs_objective,
                     directory=str(tmp_path), project_name="evolution")
    assert type(tuner.oracle).__name__ == "OracleClient"
    hps = su.oracle.get_space()
    hps.values = su.oracle.populate_space("0")["values"]  # screened: deployable, under the cap
    tuner.run_trial(keras_tuner.engine.trial.Trial(hps, trial_id="0"))
    rec = json.loads((tmp_path / "evolution" / "trial_0" / "result.json").read_text())
    assert rec["controller"] == "evolution" and rec["tuner_id"] == "tuner1"
    assert _trial_line(rec).startswith("trial 0 evolution: accuracy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DISTRIBUTED = """
import sys
import numpy as np
from accelnas import params as params_mod
from accelnas.search.tuner import run_search
from accelnas.space.graph import from_arch

def macs_objective(arch, data, seed):
    return {"accuracy": float(np.clip(np.log10(from_arch(arch).macs) / 11.0, 0, 1))}

p = params_mod.override(params_mod.load(sys.argv[1]), {"search.evaluator": "standalone"})
run_search(p, sys.argv[2], controller="random", trials=3, train_fn=macs_objective, data=0,
           progress=False, log=print)
print("search ended", flush=True)
"""


@pytest.mark.slow
def test_distributed_chief_locks_the_folder_workers_do_not_and_name_the_controller(tmp_path):
    """keras-tuner's chief/worker mode shares one run folder: the chief holds the lock, a worker
    started while it runs is not refused, and its log lines name the controller."""
    port = _free_port()
    run_dir = tmp_path / "run"
    script = tmp_path / "search.py"
    script.write_text(DISTRIBUTED)
    lock = run_dir / "search" / "search.lock"
    procs, logs = {}, {}
    try:
        for tid in ("chief", "tuner0"):
            env = dict(os.environ, KERASTUNER_TUNER_ID=tid, KERASTUNER_ORACLE_IP="127.0.0.1",
                       KERASTUNER_ORACLE_PORT=str(port), TF_CPP_MIN_LOG_LEVEL="3")
            logs[tid] = open(tmp_path / f"{tid}.log", "w")
            procs[tid] = subprocess.Popen([sys.executable, str(script), str(SMOKE), str(run_dir)],
                                          env=env, stdout=logs[tid], stderr=subprocess.STDOUT)
            if tid == "chief":  # the worker starts once the chief holds the lock
                deadline = time.time() + 120
                while not (lock.exists() and lock.read_text()) and procs["chief"].poll() is None:
                    assert time.time() < deadline, "the chief took no lock"
                    time.sleep(0.2)
                assert json.loads(lock.read_text())["pid"] == procs["chief"].pid
        for proc in procs.values():
            proc.wait(timeout=240)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in logs.values():
            f.close()
    out = {tid: (tmp_path / f"{tid}.log").read_text()[-3000:] for tid in procs}
    assert all(p.returncode == 0 for p in procs.values()), out
    trial_lines = [ln for ln in out["tuner0"].splitlines() if ln.startswith("trial ")]
    assert len(trial_lines) == 3 and all(ln.split(":")[0].endswith(" random") for ln in trial_lines), out
    df = trials_frame(run_dir / "search")
    assert len(df) == 3 and (df.status == "completed").all()


# ------------------------------------------------------------------------- the progress bar

def _console(fn):
    """What ``fn()`` prints on stdout and stderr together, as on a terminal (and its error)."""
    buf = io.StringIO()
    error = None
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            error = e
    return buf.getvalue(), error


def test_the_progress_bar_is_not_glued_to_log_lines(smoke, tmp_path):
    def go():
        run_search(smoke, tmp_path, controller="random", trials=3, train_fn=macs_objective, log=print)

    out, error = _console(go)
    assert error is None
    lines = out.split("\n")
    logged = [ln for ln in lines if "trial " in ln and "accuracy" in ln]
    assert len(logged) == 3 and all(ln.startswith("trial ") for ln in logged), out
    assert out.endswith("\n") and "3/3" in lines[-2]
    # a resume: keras-tuner's "Reloading Tuner" line and the damaged-trial line start their own lines
    _cut(tmp_path / "search" / "random" / "trial_0" / "trial.json")
    out, error = _console(go)
    assert error is None
    lines = out.split("\n")
    for start in ("Reloading Tuner from", str(tmp_path / "search" / "random" / "trial_0"), "trial 0 random"):
        assert sum(ln.startswith(start) for ln in lines) == 1, (start, out)
    assert all(ln.startswith("trial ") for ln in lines if "accuracy" in ln), out


def test_the_progress_bar_line_ends_before_an_error(smoke, tmp_path):
    impossible = params_mod.override(smoke, {"search.latency_cap": 1.0,
                                             "search.target_latency_ms.coral": 0.05})
    out, error = _console(lambda: run_search(impossible, tmp_path, controller="random", trials=2,
                                             train_fn=macs_objective, log=print))
    assert isinstance(error, RuntimeError) and "latency_cap" in str(error)
    assert "search (random, coral)" in out and out.endswith("\n"), repr(out[-200:])


def test_the_cli_done_line_starts_its_own_line(smoke, tmp_path):
    search(params_mod.override(smoke, CLI_SET), tmp_path / "smoke")  # nothing left to train
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = cli.main(["search", str(SMOKE), "--outputs", str(tmp_path), "--controller", "random",
                         *[a for k, v in CLI_SET.items() for a in ("--set", f"{k}={v}")]])
    out = buf.getvalue()
    assert code == 0, out
    lines = out.split("\n")
    assert sum(ln.startswith("Reloading Tuner from") for ln in lines) == 1, out
    assert sum(ln.startswith("done: ") and ln.endswith("(3 trials, 3 completed)") for ln in lines) == 1, out
    assert isinstance(pd.read_parquet(tmp_path / "smoke" / "trials.parquet"), pd.DataFrame)


def test_a_search_resumes_only_with_the_params_that_score_it(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.evaluator": "standalone"}, source="test")
    before = search(p, tmp_path, trials=2)
    # the supernet section does not score a stand-alone search: it resumes
    other_supernet = params_mod.override(p, {"supernet.epochs": p["supernet"]["epochs"] + 1}, source="test")
    calls = []
    assert list(search(other_supernet, tmp_path, trials=2, train_fn=counting(calls)).arch) == list(before.arch)
    assert calls == []
    # a key that scores it is refused, named, and nothing is lost
    other_reward = params_mod.override(p, {"search.alpha": -0.1}, source="test")
    with pytest.raises(ValueError, match=r"search\.alpha.*finished trials are kept"):
        search(other_reward, tmp_path, trials=2)
    assert len(list((tmp_path / "search" / "random").glob("trial_*"))) == 2
