"""The architecture search: a keras-tuner tuner over the `accelnas.search.oracles` controllers.

`run_search(params, run_dir)` is what notebook 03 and ``accelnas search`` call. Per trial the
tuner (`NASTuner.run_trial`):

1. decodes the trial's values into an `ArchSpec` (the deployed model: params' resolution/classes),
2. estimates its latency on every accelerator in params (``latency.method``: apm or sim),
3. rejects it, before any training, when it cannot be deployed (an op an accelerator does not
   map) or breaks the latency cap (the oracle screens proposals the same way, so this only
   triggers when a distributed worker has other params),
4. trains its proxy (`accelnas.train.proxy_train.train_proxy`: ``proxy`` params, the stride rule of
   `accelnas.train.proxy`) and computes the reward (`accelnas.search.reward.multi_reward`),
5. writes ``result.json`` into its trial folder at once and returns ``reward``, ``accuracy`` and
   ``latency_ms_<accelerator>`` to the oracle.

A trial that fails (diverges, cannot be built, runs out of memory) is recorded as failed with its
reason and the search goes on. Everything lives under ``<run_dir>/search/<controller>/`` (keras-tuner's
project: ``oracle.json``, ``tuner0.json``, ``trial_*/trial.json`` + ``result.json``); running again
with the same params resumes from the finished trials. Before resuming, every trial folder is
checked (`accelnas.search.trials.trial_problem`): a damaged one (a file cut short by a crash or a
full disk, a lost file) is moved into ``damaged/`` with one log line and run again; a damaged
``oracle.json`` stops the search with a `SearchFolderError` that names it and the fix.

One search at a time per run folder: `run_search` holds ``<run_dir>/search/search.lock`` (pid,
host, start time) and a second search on the folder gets a `SearchFolderError` naming the holder.
keras-tuner's distributed mode is the way to share a folder, and works unchanged: run the same
command with ``KERASTUNER_TUNER_ID=chief`` (serves the oracle, holds the lock) and ``tuner0``,
``tuner1``, ... (workers, which take no lock), all with ``KERASTUNER_ORACLE_IP`` /
``KERASTUNER_ORACLE_PORT`` and the same run folder.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accelnas.space.arch import ArchSpec
from accelnas.latency.accelerator import Accelerator, load_accelerators
from accelnas.io import exclusive_lock, lock_holder, write_json, write_parquet
from accelnas.search.oracles import ArchOracle, make_oracle
from accelnas.search.screen import Screen
from accelnas.search.reward import multi_reward, used_accelerators
from accelnas.search.trials import (CONFIG_FILE, DAMAGED_DIR, ORACLE_FILE, RESULT_FILE, SEARCH_DIR,
                                    load_json, read_result, trial_problem, trials_frame)
from accelnas.schema import describe_changes, param_changes
from accelnas.space.search_space import SearchSpace

# params sections that define a search; a project on disk searched with others is not resumed
_CONFIG_KEYS = ("seed", "dataset", "accelerators", "target_accelerator", "search_space", "proxy",
                "latency", "supernet")
_SEARCH_KEYS = ("evaluator", "controller", "population", "sample_size", "target_latency_ms", "alpha", "beta",
                "reward", "latency_cap", "learning_rate", "baseline_decay", "start_from")
LOCK_FILE = "search.lock"  # in run_dir/search: who runs a search on the folder


class SearchFolderError(ValueError):
    """A search folder that cannot be used as it is: a damaged oracle-level file, or another
    search running on it (the message names the file or the holder, and what to do)."""


# ---------------------------------------------------------------------------------------- tuner

def _tuner_base():
    from keras_tuner.engine.base_tuner import BaseTuner

    return BaseTuner


class NASTuner(_tuner_base()):
    """Runs trials: latency, screening, proxy training, reward (see the module docstring).

    Args:
        oracle: an `accelnas.search.oracles.ArchOracle`.
        screen: the `Screen` (latency per accelerator, deployability, cap).
        reward: keyword arguments of `accelnas.search.reward.multi_reward` (``targets_ms``, ``alpha``,
            ``beta``, ``combine``, ``target``).
        train_fn: ``(arch, data, seed) -> dict`` with at least ``accuracy`` in [0, 1] (default:
            `proxy_trainer` of the params' ``proxy`` section).
        seed: the search seed (each trial trains with ``seed * 100_003 + trial number``).
        progress: a tqdm bar to advance per finished trial (or None).
        log: a callable taking one line per finished trial (or None); in a search of more than
            `LOG_ALL_UP_TO` trials, only every (trials // `LOG_LINES`)-th trial and each new best
            reward (after a resume, the best since the resume).
        directory, project_name, overwrite: keras-tuner's project (``overwrite=False`` resumes).
    """

    def __init__(self, oracle: ArchOracle, *, screen: Screen, reward: dict,
                 train_fn: Callable[[ArchSpec, Any, int], dict], seed: int = 0,
                 progress=None, log: Callable[[str], None] | None = None, **kwargs):
        self.screen = screen
        self.reward_kwargs = dict(reward)
        self.train_fn = train_fn
        self.seed = int(seed)
        self.progress = progress
        self.log = log
        self._best_logged = -np.inf
        self.controller = oracle.controller  # a worker's oracle becomes keras-tuner's OracleClient
        super().__init__(oracle, **kwargs)

    def run_trial(self, trial, data=None):
        from keras_tuner.errors import FailedTrialError

        start = time.perf_counter()
        tid = trial.trial_id
        record: dict[str, Any] = {"trial_id": tid, "controller": self.controller, "tuner_id": self.tuner_id}
        try:
            arch = self.screen.space.from_values(trial.hyperparameters.values, name=f"trial_{tid}")
            record["arch"] = arch.encode()
            lat = self.screen.latencies(arch)
            record["latency_ms"] = lat
            reason = self.screen.deploy_problem(arch) or self.screen.cap_problem(lat)
            if reason:
                raise _Rejected(reason)
            result = self.train_fn(arch, data, self.seed * 100_003 + int(tid))
            acc = float(result["accuracy"])
            if not np.isfinite(acc):
                raise _Rejected(f"diverged: accuracy {acc}")
            reward = multi_reward(acc, lat, **self.reward_kwargs)
        except Exception as e:  # noqa: BLE001 - every failure is recorded, then the search goes on
            record.update(status="failed", reason=failure_reason(e), wall_s=time.perf_counter() - start)
            if not isinstance(e, _Rejected):
                record["traceback"] = traceback.format_exc(limit=8)
            write_json(Path(self.get_trial_dir(tid)) / RESULT_FILE, record)
            raise FailedTrialError(record["reason"]) from e
        record.update(status="completed", accuracy=acc, reward=reward,
                      wall_s=time.perf_counter() - start,
                      train={k: v for k, v in result.items() if k != "accuracy"})
        write_json(Path(self.get_trial_dir(tid)) / RESULT_FILE, record)
        return {"reward": reward, "accuracy": acc, **{f"latency_ms_{n}": v for n, v in lat.items()}}

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        rec = read_result(Path(self.get_trial_dir(trial.trial_id)))
        if self.progress is not None:
            self.progress.update(1)
        if self.log is not None and rec:
            total = getattr(self.oracle, "max_trials", None) or 0
            every = 1 if total <= LOG_ALL_UP_TO else max(1, total // LOG_LINES)
            reward = rec.get("reward", -np.inf) if rec.get("status") == "completed" else -np.inf
            if int(rec["trial_id"]) % every == 0 or reward > self._best_logged:
                self.log(_trial_line(rec) + ("  new best" if every > 1 and reward > self._best_logged else ""))
            self._best_logged = max(self._best_logged, reward)

    # BaseTuner's model hooks: a trial's model is not kept (the arch string is)
    def save_model(self, trial_id, model, step=0):
        return None

    def load_model(self, trial):
        raise NotImplementedError("search trials keep architectures, not weights: rebuild with "
                                  "accelnas.space.builder.build(decode_arch(row.arch))")


class _Rejected(Exception):
    pass


def failure_reason(e: BaseException) -> str:
    """A failed trial's reason: a screen rejection as it is, else `training_failure`."""
    from accelnas.train.proxy_train import training_failure

    return str(e) if isinstance(e, _Rejected) else training_failure(e)


LOG_ALL_UP_TO = 100  # trials; a longer search logs
LOG_LINES = 50       # about this many trials, plus each new best
BAR_SECONDS = 5.0    # the search's progress bar redraws at most this often


def _trial_line(rec: Mapping) -> str:
    lat = " ".join(f"{n} {v:.2f} ms" for n, v in (rec.get("latency_ms") or {}).items())
    if rec.get("status") != "completed":
        return f"trial {rec['trial_id']} {rec.get('controller', '')}: FAILED ({rec.get('reason')}) {lat}"
    return (f"trial {rec['trial_id']} {rec.get('controller', '')}: accuracy {rec['accuracy']:.3f}  {lat}  "
            f"reward {rec['reward']:.4f}  ({rec['wall_s']:.0f} s)")


# ------------------------------------------------------------------------------ proxy training

def proxy_trainer(proxy: Mapping[str, Any]) -> Callable[[ArchSpec, Any, int], dict]:
    """The default objective: train the candidate's proxy (``proxy`` params) and return its
    validation accuracy with the training details."""
    def train(arch: ArchSpec, data, seed: int) -> dict:
        from accelnas.train.proxy_train import train_proxy

        r = train_proxy(arch, data, epochs=proxy["epochs"], batch_size=proxy["batch_size"],
                        resolution=proxy["resolution"], width_mult=proxy["width_mult"], seed=seed)
        return {"accuracy": float(r.accuracy), "val_loss": float(r.val_loss),
                "train_accuracy": float(r.train_accuracy), "train_wall_s": float(r.wall_s),
                "proxy_params": int(r.params), "train_images_per_s": float(r.train_images_per_s)}
    return train


# --------------------------------------------------------------------------------- run_search

@dataclass
class SearchSetup:
    """Everything a search needs, derived from params (shared by notebook, CLI and benchmark)."""

    params: dict
    space: SearchSpace
    accelerators: dict[str, Accelerator]
    screen: Screen
    reward: dict
    oracle: ArchOracle
    start_rejected: dict = field(default_factory=dict)  # search.start_from models the screen rejects


def setup(params: Mapping, *, controller: str | None = None, seed: int | None = None,
          trials: int | None = None, space: SearchSpace | None = None) -> SearchSetup:
    """Build space, accelerators, screen, reward settings and oracle from validated params
    (``controller`` / ``seed`` / ``trials`` override the params' values; ``space``: a space
    already built, e.g. notebook 01's ``space.json``, instead of one from params)."""
    s = dict(params["search"])
    controller = controller or s["controller"]
    seed = params["seed"] if seed is None else seed
    trials = trials or s["trials"]
    accs = {a.name: a for a in load_accelerators(params["accelerators"])}
    if space is None:
        space = SearchSpace.from_params(params["search_space"], accs.values())
    targets = {n: float(s["target_latency_ms"][n]) for n in accs}
    combine = s["reward"]
    reward = dict(targets_ms=targets, alpha=s["alpha"], beta=s["beta"], combine=combine,
                  target=params["target_accelerator"])
    screen = Screen(space, accs, targets, method=params["latency"]["method"],
                    latency_cap=s["latency_cap"],
                    reward_uses=used_accelerators(targets, combine, params["target_accelerator"]))
    start, start_rejected = start_points(space, screen, s["start_from"])
    oracle = make_oracle(controller, space, max_trials=trials, seed=seed, population=s["population"],
                         sample_size=s["sample_size"], learning_rate=s["learning_rate"],
                         baseline_decay=s["baseline_decay"], screen=screen, start=start)
    return SearchSetup(dict(params), space, accs, screen, reward, oracle, start_rejected)


def start_points(space: SearchSpace, screen: Screen, names) -> tuple[list[dict], dict[str, str]]:
    """The value dicts of the zoo models ``names`` (``search.start_from``) in ``space`` (each its
    nearest member) that pass ``screen``, and ``{name: reason}`` for those the screen rejects.

    Raises:
        ValueError: a model the space cannot express."""
    start, rejected = [], {}
    for name in names:
        try:
            values = space.zoo_values(name)
        except ValueError as e:
            raise ValueError(f"search.start_from: {e}") from None
        reason = screen(values)
        if reason:
            rejected[name] = reason
        else:
            start.append(values)
    return start, rejected


def search_config(params: Mapping, controller: str) -> dict:
    """The params that define a search (a project on disk is resumed only with the same)."""
    cfg = {k: params[k] for k in _CONFIG_KEYS}
    cfg["search"] = {k: params["search"][k] for k in _SEARCH_KEYS}
    cfg["search"]["controller"] = controller
    return json.loads(json.dumps(cfg, default=str))


def _scoring_keys(cfg: Mapping) -> dict:
    """``cfg`` without the sections its evaluator does not use: a stand-alone search's scores do not
    depend on the ``supernet`` section, so a change there does not stop it resuming."""
    out = dict(cfg)
    if (out.get("search") or {}).get("evaluator") != "supernet":
        out.pop("supernet", None)
    return out


def _check_config(project: Path, cfg: dict) -> None:
    f = project / CONFIG_FILE
    old, problem = load_json(f)
    if problem == "missing":
        return
    if problem or not isinstance(old, dict):
        raise SearchFolderError(f"{f}: {problem or 'not a JSON object'}; it records the params this "
                                f"search was started with: restore it, or delete it to resume the "
                                f"search with the current params")
    old, cfg = _scoring_keys(old), _scoring_keys(cfg)
    if old == cfg:
        return
    raise ValueError(f"{project} holds a search made with other params "
                     f"({describe_changes(param_changes(old, cfg))}); its finished trials are kept: use "
                     f"another run_name, or pass overwrite=True (accelnas search --overwrite) to start "
                     f"it again")


def _check_project(project: Path, tuner_id: str, log: Callable[[str], None]) -> None:
    """Make ``project`` safe for keras-tuner to reload: its ``oracle.json`` must be whole (else a
    `SearchFolderError` naming it and the fix); a missing or damaged ``<tuner_id>.json`` is written
    again (keras-tuner reloads a project only when it is there; `NASTuner` keeps no state in it);
    a damaged trial folder (`trial_problem`) is moved into ``damaged/`` with one log line, and the
    oracle forgets it on reload (`ArchOracle.set_state`), so that it is proposed and run again."""
    trial_dirs = sorted(d for d in project.glob("trial_*") if d.is_dir())
    tuner_file = project / f"{tuner_id}.json"
    state, problem = load_json(project / ORACLE_FILE)
    if problem == "missing" and not trial_dirs and not tuner_file.exists():
        return  # nothing searched yet
    if not problem and not (isinstance(state, dict) and
                            {"end_order", "ongoing_trials", "retry_queue", "run_times"} <= set(state)):
        problem = "not keras-tuner's oracle state"
    if problem:
        raise SearchFolderError(f"{project / ORACLE_FILE}: {problem}; the search cannot resume without "
                                f"it: restore it from a backup, or delete {project} (accelnas search "
                                f"--overwrite) to start this search again")
    tuner_state, problem = load_json(tuner_file)
    if problem or not isinstance(tuner_state, dict):
        if problem != "missing":
            log(f"{tuner_file}: {problem or 'not a JSON object'}; written again (it holds no search state)")
        write_json(tuner_file, {})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for tdir in trial_dirs:
        problem = trial_problem(tdir)
        if problem:
            dest = project / DAMAGED_DIR / f"{tdir.name}-{stamp}"
            dest.parent.mkdir(exist_ok=True)
            tdir.rename(dest)
            log(f"{tdir}/{problem}; moved to {dest}, the trial will be run again")


def _role() -> str:
    """This process's part in keras-tuner's distributed mode: ``chief``, ``worker`` or ``alone``."""
    if not os.environ.get("KERASTUNER_ORACLE_IP"):
        return "alone"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


@contextmanager
def search_lock(search_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``search_dir/search.lock`` for the ``with`` block (`accelnas.io.exclusive_lock`: a killed
    search leaves no lock behind), or raise `SearchFolderError` naming the search that holds it
    (pid, host, start time)."""
    path = Path(search_dir) / LOCK_FILE

    def busy(holder: dict) -> SearchFolderError:
        return SearchFolderError(
            f"another search is running on {path.parent} ({lock_holder(holder)}; {path}): wait for it "
            "to end or stop it; to share one search between processes use keras-tuner's distributed "
            "mode (KERASTUNER_TUNER_ID=chief / tuner0, ..., see accelnas search --help)")

    with exclusive_lock(path, busy):
        yield path


def _beside_bar(log: Callable[[str], None] | None, bar) -> Callable[[str], None] | None:
    """``log`` that ends a text progress bar's line (newline) first and draws the bar again below
    the logged line, so that neither is glued to the other (a notebook's bar is a widget)."""
    notebook = sys.modules.get("tqdm.notebook")
    if log is None or bar is None or (notebook and isinstance(bar, notebook.tqdm_notebook)):
        return log

    def say(line: str) -> None:
        bar.fp.write("\n")
        bar.fp.flush()
        log(line)
        sys.stdout.flush()  # a piped stdout is buffered; the bar (stderr) is not
        bar.refresh()
    return say


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def search_targets(params: Mapping) -> list[str]:
    """The accelerators searched as targets: ``target_accelerator``, then (``search.per_accelerator``)
    every other accelerator of ``accelerators``."""
    first = params["target_accelerator"]
    if not params["search"].get("per_accelerator"):
        return [first]
    names = [a.name for a in load_accelerators(params["accelerators"])]
    return [first, *[n for n in names if n != first]]


def run_searches(params: Mapping, run_dir: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """`run_search` once per target of `search_targets` (the keyword arguments go to each), the
    data set and the stage-1 evaluator shared: a supernet is trained once and a candidate it
    scored for one target is not scored again for the next. Returns the trials of all of them."""
    shared: dict = {}
    targets = search_targets(params)
    if len(targets) > 1 and os.environ.get("KERASTUNER_ORACLE_IP"):
        log = kwargs.get("log", print)
        if log:
            log(f"distributed mode: searching {targets[0]} only (search.per_accelerator runs one search "
                "per accelerator in a single process; run it again without KERASTUNER_* for the others)")
        targets = targets[:1]
    frames = [run_search(params, run_dir, target=t, shared=shared, **kwargs) for t in targets]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else trials_frame(Path(run_dir) / SEARCH_DIR)


def _memo(fn):
    """``fn(arch, data, seed)`` remembered by architecture (a deterministic stage-1 score)."""
    seen: dict = {}

    def score(arch: ArchSpec, data, seed: int) -> dict:
        key = arch.replace(name="model").encode()
        if key not in seen:
            seen[key] = fn(arch, data, seed)
        return dict(seen[key])
    return score


def run_search(params: Mapping, run_dir: str | os.PathLike, *, controller: str | None = None,
               seed: int | None = None, trials: int | None = None, data=None, train_fn=None,
               overwrite: bool = False, progress: bool = True,
               log: Callable[[str], None] | None = print, space: SearchSpace | None = None,
               target: str | None = None, shared: dict | None = None) -> pd.DataFrame:
    """Run (or resume) the search of ``params`` under ``run_dir/search/<controller>/``
    (``<controller>@<target>/`` for a ``target`` other than the params' ``target_accelerator``).

    Args:
        params: validated params (`accelnas.params.load`).
        run_dir: the run's output folder.
        controller / seed / trials: override ``search.controller`` / ``seed`` / ``search.trials``.
        data: a loaded `accelnas.train.data.Dataset` (default: loaded from ``dataset`` when trials
            remain, with ``proxy.subset`` training images).
        train_fn: the objective (default `proxy_trainer` of ``proxy``).
        overwrite: start again, deleting this controller's finished trials.
        progress: show a tqdm bar (its line is ended before each log line and when the search stops).
        log: called with one line per finished trial, and per damaged trial set aside (None: quiet;
            damaged trials are still reported, on stderr).
        space: the search space (default: built from params; notebook 03 passes notebook 01's).
        target: the accelerator whose latency the reward uses (default ``target_accelerator``).
        shared: a dict kept between calls (`run_searches`): the loaded data and the evaluator.

    Returns:
        `trials_frame` of this project (also written to ``run_dir/trials.parquet`` for all
        projects under ``run_dir/search``).

    Raises:
        SearchFolderError: another search runs on ``run_dir`` (``search/search.lock``; a distributed
            worker takes no lock), or the project's ``oracle.json`` is damaged.
    """
    main_target = params["target_accelerator"]
    if target is not None and target != main_target:
        if target not in params["search"]["target_latency_ms"]:
            raise ValueError(f"target {target!r} has no search.target_latency_ms entry; "
                             f"accelerators with one: {', '.join(params['search']['target_latency_ms'])}")
        params = {**params, "target_accelerator": target}
    shared = {} if shared is None else shared
    su = setup(params, controller=controller, seed=seed, trials=trials, space=space)
    ctrl = su.oracle.controller
    name = ctrl if params["target_accelerator"] == main_target else f"{ctrl}@{params['target_accelerator']}"
    directory = Path(run_dir) / SEARCH_DIR
    project = directory / name
    cfg = search_config(params, ctrl)
    cfg["seed"] = su.oracle.search_seed  # the seed argument overrides params' seed
    role = _role()
    if log and su.start_rejected:
        log("search.start_from: not proposed, the screen rejects "
            + "; ".join(f"{n} ({r})" for n, r in su.start_rejected.items()))
    with nullcontext() if role == "worker" else search_lock(directory):
        if not overwrite:
            _check_config(project, cfg)
            if role != "worker":  # the chief's oracle is the one that reloads the project
                _check_project(project, os.environ.get("KERASTUNER_TUNER_ID", "tuner0"), log or _stderr)
        su.oracle.verbose = 0  # keras-tuner's own per-trial tables; `log` prints one line instead
        tuner = NASTuner(su.oracle, screen=su.screen, reward=su.reward,
                         train_fn=train_fn or proxy_trainer(params["proxy"]), seed=su.oracle.search_seed,
                         directory=str(directory), project_name=name, overwrite=overwrite)
        write_json(project / CONFIG_FILE, cfg)
        done = len(tuner.oracle.end_order) if hasattr(tuner.oracle, "end_order") else 0
        bar = None
        if progress:  # after keras-tuner's "Reloading Tuner from ..." line
            from tqdm.auto import tqdm

            sys.stdout.flush()
            # redrawn at most every BAR_SECONDS: in a notebook each redraw is another output, and
            # a supernet search finishes several trials a second
            bar = tqdm(total=su.oracle.max_trials, initial=done, unit="trial", mininterval=BAR_SECONDS,
                       desc=f"search ({ctrl}, {params['target_accelerator']})")
        tuner.progress, tuner.log = bar, _beside_bar(log, bar)
        try:
            if su.oracle.max_trials - done > 0:
                if data is None and role != "chief":
                    from accelnas.train.load import load_proxy

                    data = shared["data"] = shared.get("data") or load_proxy(params)
                if train_fn is None and params["search"]["evaluator"] == "supernet" and role != "chief":
                    from accelnas.search.supernet import SUPERNET_FILE, supernet_evaluator, trained_supernet

                    if "supernet" not in shared:
                        net = trained_supernet(su.space, params, data, directory / SUPERNET_FILE,
                                               log=tuner.log)
                        shared["supernet"] = _memo(supernet_evaluator(net, params))
                    tuner.train_fn = shared["supernet"]
                tuner.search(data)
        finally:
            if bar is not None:
                bar.close()  # ends the bar's line, also before an error message
        frame = trials_frame(directory)
        if not frame.empty:
            write_parquet(Path(run_dir) / "trials.parquet", frame)
    return frame[frame.controller == name].reset_index(drop=True) if not frame.empty else frame


__all__ = ["NASTuner", "SearchSetup", "SearchFolderError", "setup", "run_search", "run_searches",
           "search_targets", "search_lock", "proxy_trainer", "search_config"]
