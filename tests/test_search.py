"""The search machinery: oracles, screening, reward, resume, failures, distributed mode.

Most tests use a cheap deterministic objective (accuracy from the architecture's MACs) through
`run_search(train_fn=...)` so that they test the controllers and keras-tuner plumbing, not
training; the distributed test and the workbook test train real proxies."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelnas import params as params_mod
from accelnas.space.arch import decode_arch as decode
from accelnas.space.graph import from_arch
from accelnas.search.trials import best_arch, trials_frame
from accelnas.search.tuner import run_search, setup

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
    return params_mod.load(ROOT / "params" / "smoke.yaml")


def macs_objective(arch, data, seed):
    """More MACs, more accuracy (saturating): a real trade-off against latency."""
    return {"accuracy": float(np.clip(np.log10(from_arch(arch).macs) / 11.0, 0, 1))}


def search(p, tmp, **kw):
    kw.setdefault("train_fn", macs_objective)
    return run_search(p, tmp, progress=False, log=None, **kw)


@pytest.mark.parametrize("controller", ["evolution", "policy_gradient", "random"])
def test_same_seed_same_proposals_other_seed_others(smoke, tmp_path, controller):
    p = params_mod.override(smoke, {"search.population": 3, "search.sample_size": 2})
    a = search(p, tmp_path / "a", controller=controller, trials=9)
    b = search(p, tmp_path / "b", controller=controller, trials=9)
    c = search(p, tmp_path / "c", controller=controller, trials=9, seed=7)
    assert len(a) == 9 and (a.status == "completed").all()
    assert list(a.arch) == list(b.arch)
    assert list(a.reward) == list(b.reward)
    assert list(a.arch) != list(c.arch)
    assert a.arch.nunique() == 9  # no architecture is trained twice


def test_resume_after_kill_continues_exactly(smoke, tmp_path):
    """A run killed in the middle of a trial resumes from its finished trials: they are not
    trained again, the interrupted one is, and the proposals are those of an uninterrupted run."""
    p = params_mod.override(smoke, {"search.population": 3, "search.sample_size": 2})
    full = search(p, tmp_path / "full", controller="evolution", trials=8)

    class Killed(BaseException):  # like SIGINT/SIGKILL: not a trial failure
        pass

    calls = []

    def dies_at_fifth(arch, data, seed):
        calls.append(arch.encode())
        if len(calls) == 5:
            raise Killed()
        return macs_objective(arch, data, seed)

    with pytest.raises(Killed):
        search(p, tmp_path / "run", controller="evolution", trials=8, train_fn=dies_at_fifth)
    on_disk = trials_frame(tmp_path / "run" / "search")
    assert (on_disk.status == "completed").sum() == 4 and (on_disk.status == "running").sum() == 1

    again = []

    def counting(arch, data, seed):
        again.append(arch.encode())
        return macs_objective(arch, data, seed)

    resumed = search(p, tmp_path / "run", controller="evolution", trials=8, train_fn=counting)
    assert len(again) == 4  # the interrupted trial + 3 new ones; the 4 finished are kept
    assert again[0] == calls[4]
    assert list(resumed.arch) == list(full.arch)
    assert (resumed.status == "completed").all()
    # raising the trial budget extends the same search
    more = search(p, tmp_path / "run", controller="evolution", trials=10, train_fn=counting)
    assert len(more) == 10 and list(more.arch[:8]) == list(full.arch)


def test_failed_trials_are_recorded_and_the_search_goes_on(smoke, tmp_path):
    from accelnas.train.proxy_train import TrainingDiverged

    n = []

    def flaky(arch, data, seed):
        n.append(1)
        if len(n) % 3 == 1:
            raise TrainingDiverged("loss is nan at epoch 1, step 3", epoch=1, step=3, loss=float("nan"))
        if len(n) % 3 == 2:
            raise ValueError("cannot build this block")
        return macs_objective(arch, data, seed)

    df = search(smoke, tmp_path, controller="random", trials=6, train_fn=flaky)
    assert len(df) == 6
    assert list(df.status) == ["failed", "failed", "completed"] * 2
    reasons = df.reason.dropna().tolist()
    assert sum(r.startswith("diverged") for r in reasons) == 2
    assert sum(r.startswith("failed to build or train: ValueError: cannot build") for r in reasons) == 2
    result = json.loads((tmp_path / "search" / "random" / "trial_0" / "result.json").read_text())
    assert result["status"] == "failed" and "nan" in result["reason"]
    assert best_arch(df).encode() == df[df.status == "completed"].sort_values("reward").arch.iloc[-1]


def test_all_failed_gives_a_clear_message(smoke, tmp_path):
    def always(arch, data, seed):
        raise MemoryError("could not allocate 12 GB")

    df = search(smoke, tmp_path, controller="random", trials=2, train_fn=always)
    assert (df.status == "failed").all() and df.reason.str.startswith("out of memory").all()
    with pytest.raises(ValueError, match="no completed trial"):
        best_arch(df)


def test_policy_gradient_learns_a_rewarded_choice(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.population": 4, "search.learning_rate": 1.0})

    def likes_fused_stage1(arch, data, seed):
        return {"accuracy": 0.8 if arch.blocks[0].type == "fused" else 0.3}

    df = search(p, tmp_path, controller="policy_gradient", trials=40, train_fn=likes_fused_stage1)
    su = setup(p, controller="policy_gradient", trials=40)
    first = (df.accuracy.iloc[:12] == 0.8).mean()
    last = (df.accuracy.iloc[-12:] == 0.8).mean()
    assert last > first + 0.2, (first, last)
    # the policy itself moved: replay it from the finished trials
    from accelnas.search.tuner import NASTuner  # noqa: F401  (the project reloads through keras-tuner)
    su.oracle._set_project_dir(str(tmp_path / "search"), "policy_gradient")
    su.oracle.reload()
    probs = su.oracle.probabilities()["s1_block"]
    assert probs["fused"] > 0.6 > 1 / 3


def test_evolution_children_differ_from_a_parent_in_one_decision(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.population": 4, "search.sample_size": 2})
    search(p, tmp_path, controller="evolution", trials=12)
    trials = {}
    for f in sorted((tmp_path / "search" / "evolution").glob("trial_*/trial.json")):
        t = json.loads(f.read_text())
        trials[t["trial_id"]] = t["hyperparameters"]["values"]
    ids = sorted(trials)
    for tid in ids[4:]:
        child = trials[tid]
        diffs = [sum(child[k] != trials[o][k] for k in child) for o in ids if o < tid]
        assert 1 in diffs, (tid, diffs)


def test_latency_cap_screens_before_training(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.latency_cap": 1.0, "search.target_latency_ms.coral": 4.0})
    trained = []

    def record(arch, data, seed):
        trained.append(arch)
        return macs_objective(arch, data, seed)

    df = search(p, tmp_path, controller="random", trials=5, train_fn=record)
    assert (df.latency_ms_coral <= 4.0).all()
    su = setup(p, controller="random", trials=5)
    assert all(su.screen.latencies(a)["coral"] <= 4.0 for a in trained)
    state = json.loads((tmp_path / "search" / "random" / "oracle.json").read_text())
    rej = state["accelnas"]["rejections"]
    assert rej and all(r["reason"].startswith("over the latency cap") for r in rej)

    impossible = params_mod.override(smoke, {"search.latency_cap": 1.0,
                                             "search.target_latency_ms.coral": 0.05})
    with pytest.raises(RuntimeError, match="latency_cap"):
        search(impossible, tmp_path / "x", controller="random", trials=2)


def test_a_project_made_with_other_params_is_not_resumed(smoke, tmp_path):
    search(smoke, tmp_path, controller="random", trials=2)
    other = params_mod.override(smoke, {"proxy.epochs": 2})
    with pytest.raises(ValueError, match="proxy.epochs"):
        search(other, tmp_path, controller="random", trials=2)
    # nothing was lost, and overwrite starts again on purpose
    assert len(trials_frame(tmp_path / "search")) == 2
    assert len(search(other, tmp_path, controller="random", trials=1, overwrite=True)) == 1


def test_trials_parquet_collects_every_controller(smoke, tmp_path):
    search(smoke, tmp_path, controller="random", trials=3)
    search(smoke, tmp_path, controller="evolution", trials=2)
    df = pd.read_parquet(tmp_path / "trials.parquet")
    assert sorted(df.controller.unique()) == ["evolution", "random"]
    assert {"arch", "accuracy", "reward", "latency_ms_coral", "latency_ms_pixel4", "wall_s",
            "status", "best_reward_so_far"} <= set(df.columns)
    r = df[df.controller == "random"]
    assert list(r.best_reward_so_far) == list(r.reward.cummax())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_two_workers(tmp_path):
    """keras-tuner's chief/worker mode over gRPC on 127.0.0.1: real proxy trainings (smoke
    budget, synthetic data); every trial is recorded exactly once."""
    port = _free_port()
    trials = 4
    cmd = [sys.executable, "-m", "accelnas.cli", "search", str(ROOT / "params" / "smoke.yaml"),
           "--outputs", str(tmp_path), "--quiet", "--set", f"search.trials={trials}",
           "--set", "search.evaluator=standalone",
           "--controller", "random"]
    procs = {}
    logs = {}
    for tid in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, KERASTUNER_TUNER_ID=tid, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=str(port), TF_CPP_MIN_LOG_LEVEL="2")
        logs[tid] = open(tmp_path / f"{tid}.log", "w")
        procs[tid] = subprocess.Popen(cmd, env=env, stdout=logs[tid], stderr=subprocess.STDOUT)
        if tid == "chief":
            time.sleep(4)  # let the chief bind its port first
    deadline = time.time() + 300
    try:
        for tid, proc in procs.items():
            proc.wait(timeout=max(1, deadline - time.time()))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for f in logs.values():
            f.close()
    out = {tid: (tmp_path / f"{tid}.log").read_text()[-3000:] for tid in procs}
    assert all(p.returncode == 0 for p in procs.values()), out
    df = trials_frame(tmp_path / "smoke" / "search")
    assert len(df) == trials, out
    assert df.trial_id.is_unique and df.arch.is_unique
    assert (df.status == "completed").all(), df[["trial_id", "status", "reason"]]
    assert set(df.tuner_id) <= {"tuner0", "tuner1"} and len(set(df.tuner_id)) == 2


def test_best_so_far_carries_over_failed_trials(smoke, tmp_path):
    n = []

    def every_other_fails(arch, data, seed):
        n.append(1)
        if len(n) % 2 == 0:
            raise ValueError("boom")
        return macs_objective(arch, data, seed)

    df = search(smoke, tmp_path, controller="random", trials=4, train_fn=every_other_fails)
    assert df.best_reward_so_far.notna().all()
    assert df.best_reward_so_far.iloc[1] == df.reward.iloc[0]


def test_best_archs_record_and_base_arch():
    from accelnas.search.trials import base_arch, best_archs_record
    from accelnas.space import zoo

    a, b = zoo.get("mobilenet_v2"), zoo.get("mobilenet_edgetpu")
    frame = pd.DataFrame({"controller": "evolution", "trial_id": ["0", "1", "2"],
                          "status": ["completed", "completed", "failed"], "accuracy": [0.3, 0.2, None],
                          "latency_ms_coral": [2.0, 1.0, None], "reward": [0.29, 0.21, None],
                          "reward_coral": [0.29, 0.21, None], "arch": [a.encode(), b.encode(), None]})
    rec = best_archs_record(frame, ["coral", "pixel4"], top=5)
    assert set(rec) == {"by_reward", "by_reward_coral"}
    assert [r["trial_id"] for r in rec["by_reward"]] == ["0", "1"]
    assert list(rec["by_reward"][0]) == ["controller", "trial_id", "accuracy", "latency_ms_coral", "reward", "arch"]
    assert base_arch(rec).encode() == a.replace(name="searched").encode()
    assert base_arch(None, "mobilenet_v2", resolution=96).resolution == 96
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        base_arch(None)
    with pytest.raises(ValueError, match="no completed trial"):
        base_arch({"by_reward": []})
    with pytest.raises(ValueError, match="neither a zoo name"):
        base_arch(None, "not-an-arch")


@pytest.mark.slow
def test_supernet_evaluator_scores_trials_and_is_reused(smoke, tmp_path):
    """search.evaluator: supernet trains the supernet once (search/supernet.npz), scores every
    trial on it, and a resumed search reuses the saved supernet instead of training again."""
    p = params_mod.override(smoke, {"search.evaluator": "supernet", "supernet.epochs": 1,
                                     "supernet.calib_images": 64, "search.trials": 3})
    lines: list[str] = []
    df = run_search(p, tmp_path, progress=False, log=lines.append)
    done = df[df.status == "completed"]
    assert len(df) == 3 and len(done) >= 1
    assert done.accuracy.between(0, 1).all() and (done.eval_s > 0).all()
    assert (tmp_path / "search" / "supernet.npz").is_file()
    assert any(line.startswith("supernet: trained") for line in lines)
    lines.clear()
    df = run_search(params_mod.override(p, {"search.trials": 5}), tmp_path, progress=False, log=lines.append)
    assert len(df) == 5
    assert any(line.startswith("supernet: reusing") for line in lines)
    assert not any(line.startswith("supernet: trained") for line in lines)
    # one search per accelerator: the supernet is loaded once and shared by both searches
    from accelnas.search.tuner import run_searches

    lines.clear()
    df = run_searches(params_mod.override(p, {"search.trials": 5, "search.per_accelerator": True}),
                      tmp_path, progress=False, log=lines.append)
    assert set(df.target) == {"coral", "pixel4"} and (df.status == "completed").sum() >= 6
    assert sum(line.startswith("supernet: reusing") for line in lines) == 1


def test_per_accelerator_searches_target_each_accelerator(smoke, tmp_path):
    """search.per_accelerator: one search per accelerator, each rewarded by its own latency and
    target; best_archs.json ranks each accelerator's architectures from its own search."""
    from accelnas.search.reward import mnas_reward
    from accelnas.search.trials import best_archs_record, for_target, rescore
    from accelnas.search.tuner import run_searches, search_targets

    p = params_mod.override(smoke, {"search.population": 2, "search.sample_size": 2,
                                     "search.per_accelerator": True, "search.trials": 4})
    assert search_targets(p) == ["coral", "pixel4"]
    assert search_targets(params_mod.override(p, {"target_accelerator": "pixel4"})) == ["pixel4", "coral"]
    assert search_targets(params_mod.override(smoke, {"search.per_accelerator": False})) == ["coral"]
    df = run_searches(p, tmp_path, train_fn=macs_objective, progress=False, log=None)
    assert sorted(p.name for p in (tmp_path / "search").iterdir() if p.is_dir()) == ["evolution", "evolution@pixel4"]
    assert df.groupby("controller").target.unique().map(list).to_dict() == {
        "evolution": ["coral"], "evolution@pixel4": ["pixel4"]}
    done = df[df.status == "completed"]
    assert len(done) == 8
    s = p["search"]
    for acc, g in done.groupby("target"):
        want = mnas_reward(g.accuracy.to_numpy(), g[f"latency_ms_{acc}"].to_numpy(),
                           s["target_latency_ms"][acc], s["alpha"], s["beta"])
        assert np.allclose(g.reward, want)
    assert len(for_target(df, "pixel4")) == 4 and len(for_target(df, "nowhere")) == 8
    rec = best_archs_record(rescore(df, p), ["coral", "pixel4"], top=8, target="coral")
    assert {r["controller"] for r in rec["by_reward"]} == {"evolution"}
    assert {r["controller"] for r in rec["by_reward_pixel4"]} == {"evolution@pixel4"}
    with pytest.raises(ValueError, match="target_latency_ms"):
        run_search(p, tmp_path, target="tpu9", train_fn=macs_objective, progress=False, log=None)


def test_finalists_ranked_by_stage2_and_searched_model_is_the_stage2_winner(smoke):
    """Stage 2: the best distinct stage-1 candidates of the target's search, re-ranked by the
    reward of their mean stage-2 accuracy; best_archs' stage2 list decides the searched model."""
    from accelnas.search.trials import base_arch, finalists, stage2_ranking, stage2_record
    from accelnas.space import zoo

    a, b, c = (zoo.get(n).encode() for n in ("mobilenet_v2", "mobilenet_edgetpu", "efficientnet_edgetpu_s"))
    frame = pd.DataFrame({"controller": ["evolution"] * 4 + ["evolution@pixel4"],
                          "target": ["coral"] * 4 + ["pixel4"], "trial_id": list("01234"),
                          "status": ["completed", "completed", "completed", "failed", "completed"],
                          "accuracy": [0.40, 0.40, 0.30, None, 0.9], "reward": [0.41, 0.41, 0.33, None, 0.95],
                          "latency_ms_coral": [5.0, 5.0, 4.0, None, 9.0], "arch": [a, a, b, c, c]})
    fin = finalists(frame, 3, "coral")
    assert list(fin.name) == ["finalist_1", "finalist_2"] and list(fin.arch) == [a, b]  # distinct, own target
    renamed = frame.assign(arch=[a, decode(a).replace(name="trial_1").encode(), b, c, c])
    assert list(finalists(renamed, 3, "coral").trial_id) == ["0", "2"]  # another name is the same model
    # widths that differ at full size but round to the same channels at stage 2's width: one network
    base = decode(b)
    wider = base.replace(blocks=(base.blocks[0].replace(out_channels=base.blocks[0].out_channels + 1),)
                         + base.blocks[1:]).encode()
    near = frame.assign(arch=[a, wider, b, c, c], reward=[0.41, 0.40, 0.39, None, 0.95])
    budget = {"resolution": 32, "width_mult": 0.5}
    assert list(finalists(near, 3, "coral").trial_id) == ["0", "1", "2"]
    assert list(finalists(near, 3, "coral", budget).trial_id) == ["0", "1"]
    summary = pd.DataFrame({"name": ["finalist_1", "finalist_2"], "kind": "finalist",
                            "accuracy_mean": [0.50, 0.60], "accuracy_std": [0.01, 0.01], "accuracy_count": [2, 2]})
    rank = stage2_ranking(fin, summary, smoke, "coral")
    assert list(rank.name) == ["finalist_2", "finalist_1"] and list(rank.rank1) == [2, 1]
    s = smoke["search"]
    want = 0.60 * (4.0 / s["target_latency_ms"]["coral"]) ** s["alpha"]
    assert rank.stage2_reward.iloc[0] == pytest.approx(want)
    rec = stage2_record(rank)
    assert [r["name"] for r in rec] == ["finalist_2", "finalist_1"]
    assert base_arch({"by_reward": [{"arch": a}], "stage2": rec}).encode() == decode(b).replace(name="searched").encode()
    # a finalist whose stage-2 trainings all failed is ranked last and left out of the record
    rank = stage2_ranking(fin, summary.iloc[:1], smoke, "coral")
    assert list(rank.name) == ["finalist_1", "finalist_2"] and [r["name"] for r in stage2_record(rank)] == ["finalist_1"]


def test_the_search_starts_from_the_skeleton_once(smoke, tmp_path):
    su = setup(smoke, controller="evolution")
    skeleton = su.space.zoo_values("efficientnet_edgetpu_s")
    first = search(smoke, tmp_path / "a", controller="evolution", trials=3)
    values = [su.space.nearest(decode(a))[0] for a in first.arch]
    assert values[0] == skeleton and skeleton not in values[1:]
    more = search(smoke, tmp_path / "a", controller="evolution", trials=5)  # resumed: not again
    assert [su.space.nearest(decode(a))[0] for a in more.arch].count(skeleton) == 1
    cold = search(params_mod.override(smoke, {"search.start_from": []}), tmp_path / "b",
                  controller="evolution", trials=3)
    assert skeleton not in [su.space.nearest(decode(a))[0] for a in cold.arch]
    # a start point the screen rejects is named and skipped; one the space cannot express is an error
    lines = []
    capped = params_mod.override(smoke, {"search.latency_cap": 1.0, "search.target_latency_ms.coral": 2.0})
    df = run_search(capped, tmp_path / "c", controller="random", trials=2, train_fn=macs_objective,
                    progress=False, log=lines.append)
    assert skeleton not in [su.space.nearest(decode(a))[0] for a in df.arch]
    assert any(line.startswith("search.start_from: not proposed") and "efficientnet_edgetpu_s" in line
               for line in lines), lines
    with pytest.raises(ValueError, match="search.start_from: resnet50 has no near member"):
        setup(params_mod.override(smoke, {"search.start_from": ["resnet50"]}))
    with pytest.raises(params_mod.ParamsError, match="search.start_from"):
        params_mod.override(smoke, {"search.start_from": ["no_such_model"]})


def test_from_start_says_whether_the_searched_model_is_the_start_point(smoke):
    from accelnas.search.trials import from_start

    space = setup(smoke).space
    start = space.zoo_member("efficientnet_edgetpu_s")
    assert "IS the search's start point" in from_start(start, space, ["efficientnet_edgetpu_s"])
    values = space.zoo_values("efficientnet_edgetpu_s")
    other = dict(values, s1_kernel=[k for k in space.choices()["s1_kernel"] if k != values["s1_kernel"]][0])
    line = from_start(space.from_values(other), space, ["efficientnet_edgetpu_s"])
    assert f"in 1 of {len(values)} decisions" in line
    assert "random" in from_start(start, space, [])


def test_finalists_add_the_start_point_after_the_best():
    from accelnas.search.trials import finalists
    from accelnas.space import zoo

    names = ("mobilenet_v2", "mobilenet_edgetpu", "efficientnet_edgetpu_s", "mobilenet_v3_large")
    a, b, c, d = (zoo.get(n).encode() for n in names)
    frame = pd.DataFrame({"controller": "evolution", "target": "coral", "trial_id": list("0123"),
                          "status": "completed", "accuracy": [0.4, 0.39, 0.38, 0.37],
                          "reward": [0.4, 0.39, 0.38, 0.37], "latency_ms_coral": [5.0] * 4,
                          "arch": [d, a, b, c]})
    fin = finalists(frame, 2, "coral", start=[decode(c)])
    assert list(fin.arch) == [d, a, c] and list(fin.rank1) == [1, 2, 4] and list(fin.start) == [False, False, True]
    assert list(fin.name) == ["finalist_1", "finalist_2", "finalist_3"]
    among = finalists(frame, 2, "coral", start=[decode(d)])  # already a finalist: not twice
    assert list(among.arch) == [d, a] and list(among.start) == [True, False]
    absent = finalists(frame.iloc[:3], 2, "coral", start=[decode(c)])  # no trial holds it
    assert list(absent.arch) == [d, a] and not absent.start.any()


def test_a_long_search_logs_about_fifty_lines_and_every_new_best(smoke, tmp_path):
    """Up to 100 trials, a line each; beyond, every (trials // 50)-th trial and each new best."""
    from accelnas.search.tuner import LOG_ALL_UP_TO, LOG_LINES

    lines = []
    frame = run_search(smoke, tmp_path, controller="random", trials=120, train_fn=macs_objective,
                       progress=False, log=lines.append)
    assert LOG_ALL_UP_TO < 120 and len(frame) == 120
    done = frame.sort_values("trial_id")
    best = done.reward.fillna(-np.inf).cummax()
    new_best = done.trial_id[(done.reward > best.shift(fill_value=-np.inf))]
    every = {t for t in done.trial_id if int(t) % (120 // LOG_LINES) == 0}
    logged = {line.split()[1] for line in lines if line.startswith("trial ")}
    assert logged == every | set(new_best)
    assert all(("new best" in line) == (line.split()[1] in set(new_best)) for line in lines if line.startswith("trial "))
    short = []
    run_search(smoke, tmp_path / "short", controller="random", trials=5, train_fn=macs_objective,
               progress=False, log=short.append)
    assert sum(line.startswith("trial ") for line in short) == 5


def test_the_search_bar_redraws_at_most_every_few_seconds(smoke, tmp_path, capsys):
    """A notebook keeps every redraw of the bar as an output: a search finishing many trials a
    second must not redraw per trial."""
    from accelnas.search.tuner import BAR_SECONDS

    t0 = time.perf_counter()
    run_search(smoke, tmp_path, controller="random", trials=60, train_fn=macs_objective, progress=True, log=None)
    wall = time.perf_counter() - t0
    redraws = capsys.readouterr().err.count("\r")
    assert 1 <= redraws <= 3 + wall / BAR_SECONDS
