"""The trials of a search, read back from disk and analysed (pandas; no TensorFlow).

`trials_frame` reads every project under ``run_dir/search`` (keras-tuner's ``trial_*/trial.json``
plus our ``result.json``); `best_archs` / `best_arch` pick the winners; `rescore` asks which
architectures each accelerator would have preferred; `composition` / `composition_summary` give
the block composition of the top trials (shares per registered block type).

A project's files: keras-tuner's ``oracle.json`` (the controller's state), ``<tuner id>.json``
(``tuner0.json``; the tuner's state, empty for ours), ``trial_<id>/trial.json`` (values, metrics,
status), and ours: ``search_config.json`` and ``trial_<id>/result.json``. `trial_problem` says
what is wrong with a trial folder (a file cut short by a crash or a full disk, a lost file);
`trials_frame` lists such a trial as ``damaged``, and a resumed search sets it aside into
``damaged/`` and runs it again (`accelnas.search.tuner.run_search`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accelnas.train.proxy import proxy_arch
from accelnas.search.reward import mnas_reward
from accelnas.space import blocks
from accelnas.space.arch import ArchSpec, decode_arch

SEARCH_DIR = "search"  # keras-tuner projects: run_dir/search/<controller>[@<target>]/
RESULT_FILE = "result.json"
TRIAL_FILE = "trial.json"  # keras-tuner's, per trial folder
ORACLE_FILE = "oracle.json"  # keras-tuner's, per project
CONFIG_FILE = "search_config.json"  # per project: the params that define its search
DAMAGED_DIR = "damaged"  # per project: damaged trial folders set aside by a resumed search


def read_result(trial_dir: Path) -> dict | None:
    """The trial's ``result.json``, or None when it is missing or damaged (see `trial_problem`)."""
    rec, _ = load_json(Path(trial_dir) / RESULT_FILE)
    return rec if isinstance(rec, dict) else None


def load_json(path: str | os.PathLike) -> tuple[Any, str | None]:
    """``(content, None)`` of a JSON file, or ``(None, what is wrong)``: ``missing``,
    ``unreadable (...)`` or ``not valid JSON (...)`` (e.g. cut short by a crash or a full disk)."""
    try:
        return json.loads(Path(path).read_text()), None
    except FileNotFoundError:
        return None, "missing"
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e})"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable ({e})"


def trial_problem(trial_dir: str | os.PathLike) -> str | None:
    """What is wrong with a trial folder, starting with the file's name (None: nothing):
    keras-tuner's ``trial.json`` missing, not valid JSON or without id, values and status; a
    ``result.json`` that is not a valid JSON object; or, for a trial keras-tuner records as
    completed, a ``result.json`` that is missing or lacks the architecture or a finite accuracy
    and reward (a running or failed trial may have no ``result.json``)."""
    tdir = Path(trial_dir)
    t, problem = load_json(tdir / TRIAL_FILE)
    if problem:
        return f"{TRIAL_FILE}: {problem}"
    if not (isinstance(t, dict) and t.get("trial_id") is not None and t.get("status")
            and isinstance((t.get("hyperparameters") or {}).get("values"), dict)):
        return f"{TRIAL_FILE}: no trial id, values or status"
    rec, problem = load_json(tdir / RESULT_FILE)
    if problem and problem != "missing":
        return f"{RESULT_FILE}: {problem}"
    if rec is not None and not isinstance(rec, dict):
        return f"{RESULT_FILE}: not a JSON object"
    if t["status"] != "COMPLETED":
        return None
    if rec is None:
        return f"{RESULT_FILE}: missing (keras-tuner's {TRIAL_FILE} says completed)"
    wrong = [f"status {rec.get('status')!r}"] if rec.get("status") != "completed" else []
    wrong += [f"{k} {rec.get(k)!r}" for k in ("accuracy", "reward") if not _finite(rec.get(k))]
    if not isinstance(rec.get("arch"), str) or not rec["arch"]:
        wrong.append("no architecture")
    return f"{RESULT_FILE}: completed trial with {', '.join(wrong)}" if wrong else None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and bool(np.isfinite(x))


def trials_frame(search_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per trial of every project under ``search_dir`` (``run_dir/search``): controller
    (the project: ``<controller>`` or ``<controller>@<target>``), target (the accelerator its reward
    targets), trial_id, status (completed / failed / running / damaged: see `trial_problem`, the
    reason says what is wrong), reason, arch, accuracy, latency_ms_<acc>, reward, wall_s, finished
    (completion rank within its project), best_reward_so_far."""
    rows = []
    for project in sorted(Path(search_dir).glob("*")):
        oracle_file = project / ORACLE_FILE
        if not oracle_file.exists():
            continue
        state, _ = load_json(oracle_file)
        end_order = state.get("end_order", []) if isinstance(state, dict) else []
        cfg, _ = load_json(project / CONFIG_FILE)
        target = cfg.get("target_accelerator") if isinstance(cfg, dict) else None
        rank = {tid: i for i, tid in enumerate(end_order)}
        for tdir in sorted(d for d in project.glob("trial_*") if d.is_dir()):
            problem = trial_problem(tdir)
            if problem:
                tid = tdir.name.removeprefix("trial_")
                rows.append({"controller": project.name, "target": target, "trial_id": tid,
                             "status": "damaged", "reason": problem, "arch": None, "accuracy": None,
                             "reward": None, "wall_s": None, "finished": rank.get(tid)})
                continue
            t = json.loads((tdir / TRIAL_FILE).read_text())
            rec = read_result(tdir) or {}
            status = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}.get(
                t.get("status"), "running")
            row = {"controller": project.name, "target": target, "trial_id": t["trial_id"], "status": status,
                   "reason": rec.get("reason") or (_first_error(t.get("message")) if status == "failed" else None),
                   "arch": rec.get("arch"), "accuracy": rec.get("accuracy"), "reward": rec.get("reward"),
                   "wall_s": rec.get("wall_s"), "tuner_id": rec.get("tuner_id"),
                   "finished": rank.get(t["trial_id"])}
            for n, v in (rec.get("latency_ms") or {}).items():
                row[f"latency_ms_{n}"] = v
            for k, v in (rec.get("train") or {}).items():
                row[k] = v
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["controller", "trial_id", "status", "reason", "arch", "accuracy",
                                     "reward", "wall_s", "finished"])
    df = pd.DataFrame(rows).sort_values(["controller", "finished", "trial_id"], na_position="last")
    for col in ("accuracy", "reward", "wall_s", "finished"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    bsf = df["reward"].where(df.status == "completed").groupby(df["controller"]).cummax()
    df["best_reward_so_far"] = bsf.groupby(df["controller"]).ffill()  # failed rows carry the best on
    return df.reset_index(drop=True)


def _first_error(message: str | None) -> str | None:
    if not message:
        return None
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else None


def for_target(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The trials of the searches that targeted ``target``; all trials when none did (ranked by
    ``reward_<target>`` of `rescore`, they say which of them that accelerator would prefer)."""
    if "target" in frame and (frame["target"] == target).any():
        return frame[frame["target"] == target]
    return frame


def best_archs(frame: pd.DataFrame, n: int = 5, by: str = "reward") -> pd.DataFrame:
    """The ``n`` best completed trials by ``by`` (all controllers), best first."""
    done = frame[frame.status == "completed"]
    return done.sort_values(by, ascending=False).head(n).reset_index(drop=True)


def best_arch(frame: pd.DataFrame, by: str = "reward") -> ArchSpec:
    """The `ArchSpec` of the best completed trial.

    Raises:
        ValueError: no trial completed (the message lists the failure reasons).
    """
    top = best_archs(frame, 1, by)
    if top.empty:
        reasons = frame["reason"].dropna().value_counts().head(5).to_dict() if len(frame) else {}
        raise ValueError(f"no completed trial to pick from ({len(frame)} trials; failures: {reasons}); "
                         "see trials.parquet / the trial folders under search/")
    return decode_arch(top.arch.iloc[0])


def rescore(frame: pd.DataFrame, params: Mapping) -> pd.DataFrame:
    """``frame`` plus ``reward_<acc>``: each completed trial's reward with that accelerator alone
    as the target (same accuracy, its latency and ``search.target_latency_ms``), to ask which
    architectures each accelerator would have preferred."""
    out = frame.copy()
    s = params["search"]
    for name, target in s["target_latency_ms"].items():
        col = f"latency_ms_{name}"
        if col not in out:
            continue
        ok = (out.status == "completed") & out[col].notna() & out.accuracy.notna()
        out[f"reward_{name}"] = np.nan
        out.loc[ok, f"reward_{name}"] = mnas_reward(out.loc[ok, "accuracy"].to_numpy(),
                                                    out.loc[ok, col].to_numpy(), target,
                                                    s["alpha"], s["beta"])
    return out


def composition(frame: pd.DataFrame, by: str = "reward", top: int = 5) -> pd.DataFrame:
    """Per stage, the blocks of the ``top`` completed trials by ``by``: one row per (trial, stage)
    with block type, kernel, expand_ratio, channels, repeats, activation (the architectures'
    composition, for "which blocks does each accelerator prefer where")."""
    rows = []
    for rank, r in enumerate(best_archs(frame, top, by).itertuples(), start=1):
        arch = decode_arch(r.arch)
        for i, b in enumerate(arch.blocks, start=1):
            rows.append({"rank": rank, "trial_id": r.trial_id, "controller": r.controller, "stage": i,
                         "block": b.type, "kernel": b.kernel, "expand_ratio": b.expand_ratio,
                         "channels": b.out_channels, "repeats": b.repeats,
                         "activation": b.activation or arch.activation})
    return pd.DataFrame(rows)


def composition_summary(comp: pd.DataFrame) -> pd.DataFrame:
    """`composition` rows (with an ``accelerator`` column) summarised per (accelerator, stage):
    share of each block type, mean kernel, expansion, channels and repeats."""
    if comp.empty:
        return pd.DataFrame()
    shares = pd.crosstab([comp.accelerator, comp.stage], comp.block, normalize="index")
    shares = shares.reindex(columns=sorted(set(shares.columns) | set(blocks.searchable())), fill_value=0.0)
    means = comp.groupby(["accelerator", "stage"])[["kernel", "expand_ratio", "channels", "repeats"]].mean()
    return shares.join(means).round(2)


def finalists(frame: pd.DataFrame, n: int, target: str | None = None,
              budget: Mapping | None = None, start=()) -> pd.DataFrame:
    """The ``n`` best distinct architectures by the search reward among the completed trials of
    the search that targeted ``target`` (`for_target`; all trials when None), best first, named
    ``finalist_1`` ... (stage 2 trains them again), with ``rank1`` (the stage-1 rank among the
    distinct completed trials) and ``start`` (True for a start point).

    Distinct means another network: the name is not the model, and with ``budget`` (the stage-2
    proxy section, `accelnas.train.cache.stage2_budget`) two architectures whose stage-2
    proxies are the same network (e.g. widths that round alike at half width) count once, the
    better by reward kept: stage 2 would train the same network twice.

    ``start``: the search's start points (ArchSpecs, ``search.start_from``); each one a completed
    trial holds is added after the ``n`` best when it is not among them (``stage2.include_start``),
    so the searched model replaces the start point only if it beats it at stage 2."""
    pool = for_target(frame, target) if target else frame
    done = pool[pool.status == "completed"].sort_values("reward", ascending=False)

    def identity(text: str) -> str:
        arch = decode_arch(text).replace(name="model")
        if budget:
            arch = proxy_arch(arch, resolution=int(budget["resolution"]),
                              width_mult=float(budget["width_mult"]), num_classes=arch.num_classes)
        return arch.encode()

    ids = done.arch.map(identity)  # once per trial: a supernet search has a thousand
    first = ~ids.duplicated()
    starts = {identity(a.encode()) for a in start}
    distinct = done[first].assign(rank1=np.arange(1, int(first.sum()) + 1),
                                  start=ids[first].isin(starts).to_numpy())
    rest = distinct.iloc[int(n):]
    top = pd.concat([distinct.head(int(n)), rest[rest.start]]).reset_index(drop=True)
    return top.assign(name=[f"finalist_{i}" for i in range(1, len(top) + 1)])


def stage2_ranking(finals: pd.DataFrame, summary: pd.DataFrame, params: Mapping,
                   target: str) -> pd.DataFrame:
    """The finalists ranked by their stage-2 reward: MnasNet's reward of the mean stage-2
    validation accuracy over seeds (``summary``: `accelnas.train.cache.summarize` of their
    trainings) at the target's latency. Columns: name, arch, stage-1 ``accuracy`` and ``reward``,
    ``accuracy_mean`` / ``accuracy_std`` / ``accuracy_count`` of stage 2, ``stage2_reward``, and
    ``rank1`` (the stage-1 rank) and ``start`` (a search start point), best first; finalists with
    no completed training last."""
    s = params["search"]
    lat = f"latency_ms_{target}"
    out = finals[["name", "arch", "accuracy", "reward", lat]].assign(
        rank1=finals["rank1"] if "rank1" in finals else np.arange(1, len(finals) + 1),
        start=finals["start"] if "start" in finals else False)
    out = out.merge(summary.drop(columns="kind", errors="ignore"), on="name", how="left")
    ok = out.accuracy_mean.notna() & out[lat].notna()
    out["stage2_reward"] = np.nan
    out.loc[ok, "stage2_reward"] = mnas_reward(out.loc[ok, "accuracy_mean"].to_numpy(),
                                               out.loc[ok, lat].to_numpy(),
                                               float(s["target_latency_ms"][target]), s["alpha"], s["beta"])
    return out.sort_values("stage2_reward", ascending=False, na_position="last").reset_index(drop=True)


def stage2_record(ranking: pd.DataFrame) -> list[dict]:
    """``best_archs.json``'s ``stage2`` list: the finalists of `stage2_ranking` that completed
    stage 2, best first (plain JSON values)."""
    ok = ranking[ranking.stage2_reward.notna()]
    return json.loads(ok.to_json(orient="records"))


BEST_ARCHS_FILE = "best_archs.json"
BEST_COLUMNS = ("controller", "trial_id", "accuracy", "reward", "arch")


def from_start(arch: ArchSpec, space, names) -> str:
    """One line: how the searched ``arch`` relates to the search's start points (``search.start_from``
    zoo models' nearest members of ``space``): the same, or how many decisions differ."""
    if not names:
        return "the search started from random architectures (search.start_from: [])"
    found = space.nearest(arch)
    if found is None:
        return "the searched model is not a member of this search space"
    diffs = {n: sum(found[0][k] != v for k, v in space.zoo_values(n).items()) for n in names}
    name, d = min(diffs.items(), key=lambda kv: kv[1])
    if d == 0:
        return (f"the searched model IS the search's start point ({name}'s nearest member of the space): "
                "the search found nothing better at stage 2")
    return (f"the searched model differs from the search's start point ({name}'s nearest member) "
            f"in {d} of {len(found[0])} decisions")


def best_archs_record(frame: pd.DataFrame, accelerators, top: int = 5, target: str | None = None) -> dict:
    """What ``best_archs.json`` holds: the ``top`` completed trials by the search reward
    (``by_reward``; of the search that targeted ``target`` when given) and, per accelerator with a
    ``reward_<name>`` column (`rescore`), by its own reward among the trials of its own search, or
    of all searches when none targeted it (``by_reward_<name>``, `for_target`); each a list of
    records (controller, trial_id, accuracy, latency_ms_<acc>..., reward, arch), best first."""
    names = [getattr(a, "name", a) for a in accelerators]
    cols = [c for c in (*BEST_COLUMNS[:3], *(f"latency_ms_{n}" for n in names), *BEST_COLUMNS[3:])
            if c in frame]
    main = for_target(frame, target) if target else frame
    out = {"by_reward": best_archs(main, top)[cols].to_dict("records")}
    for n in names:
        if f"reward_{n}" in frame:
            out[f"by_reward_{n}"] = best_archs(for_target(frame, n), top, by=f"reward_{n}")[cols].to_dict("records")
    return out


def base_arch(best: Mapping | None, base: str | None = None, *, resolution: int | None = None,
              num_classes: int | None = None) -> ArchSpec:
    """The architecture to scale / report: ``base`` as a zoo name or an architecture string, or
    (None) the searched architecture of ``best`` (the ``best_archs.json`` record): the stage-2
    winner (``stage2``) when stage 2 ran, else the best of stage 1 (``by_reward``).

    Raises:
        FileNotFoundError: ``base`` and ``best`` are both None (run notebook 03, or name a base).
        ValueError: ``best`` lists no completed trial, or ``base`` is neither a zoo name nor an
            architecture string.
    """
    from accelnas.space import zoo

    if base is None:
        if best is None:
            raise FileNotFoundError(f"no {BEST_ARCHS_FILE} in the run: run notebook 03 (accelnas run "
                                    "PARAMS --only 03) first, or set the notebook parameter base to "
                                    "a zoo name or an architecture string")
        top = best.get("stage2") or best.get("by_reward") or []
        if not top:
            raise ValueError(f"{BEST_ARCHS_FILE} lists no completed trial: every search trial failed "
                             "(see trials.parquet); set the notebook parameter base instead")
        return decode_arch(top[0]["arch"]).replace(name="searched")
    if base in zoo.names():
        return zoo.get(base, resolution=resolution, num_classes=num_classes)
    try:
        return decode_arch(base)
    except ValueError as e:
        raise ValueError(f"base {base!r} is neither a zoo name ({', '.join(zoo.names())}) nor an "
                         f"architecture string: {e}") from e
