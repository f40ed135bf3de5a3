"""Search controllers at equal trial budgets on a cheap but real objective.

    python benchmarks/search_bench.py [--json] [--trials N] [--seeds K] [--controllers C ...]
        [--objective naswot|tiny-train|supernet] [--population P] [--sample-size S]
        [--learning-rate LR] [--baseline-decay BD] [--pg-variant LR:BD:POP ...]
        [--evo-variant POP:SAMPLE ...] [--params FILE] [--cache FILE] [--fast]

Every controller (evolution, policy_gradient, random; `accelnas.search.oracles`) runs the real search
(`accelnas.search.tuner.run_search`, keras-tuner, one fresh temporary folder per (controller, seed)) over
the search space, accelerators, latency model (``latency.method``: apm), targets, reward (soft
constraint, alpha = beta = -0.07, on ``target_accelerator`` coral) and latency cap of the params
file (default ``params/default.yaml``), with ``--trials`` trials per run and seeds 0..K-1. Only the
objective is swapped for a cheap one (``train_fn``), and ``search.population`` /
``search.sample_size`` / ``search.learning_rate`` / ``search.baseline_decay`` can be set from the
command line (default: the params file's, i.e. the library's defaults are what is benchmarked);
``--pg-variant`` / ``--evo-variant`` add runs of a controller with other settings (labelled with
them) to tune it at equal budget. Every run starts from scratch (``search.start_from: []``): the
warm start would give every controller the same first trial.

Objectives (``--objective``), all on real CIFAR-10 (``$ACCELNAS_DATA_DIR/cifar10.npz``, ...):

- ``naswot`` (default): the zero-cost NASWOT score of Mellor et al. 2021 ("Neural Architecture
  Search without Training"): the candidate's proxy (`accelnas.train.proxy.proxy_arch`: 32 px, width
  ``NASWOT_WIDTH``, 10 classes, the stride rule of the proxy task) is built with Keras at its
  seeded initialisation (seed ``OBJECTIVE_SEED``); one fixed batch of ``NASWOT_BATCH`` normalized
  CIFAR-10 training images goes through it (BatchNorm in training mode); every activation (ReLU,
  ReLU6, h-swish, swish; not the SE gates or the softmax) gives a binary code per image (its input
  > 0), and the score is ``S = log|det K|`` with ``K[i, j]`` = number of units where images i and j
  agree. ``S`` is mapped into [0, 1] by ONE FIXED monotone map, never refitted by the benchmark:

      accuracy = ACC_LO + (ACC_HI - ACC_LO) * sigmoid((S - S_MID) / S_SCALE)

  with the constants below (chosen once from the scores of admissible random architectures and
  short proxy trainings of some of them, see ``CALIBRATION``): the mapped values stay in the range
  of real proxy accuracies, so the soft latency term of the reward (a few % over the admissible
  latencies) trades off against accuracy as it does in a real search. ~1-3 s per architecture.
  NASWOT measures how differently the initialised network sees different images, not accuracy:
  on this space it agreed only weakly with a 3-epoch proxy training (``CALIBRATION``). The
  benchmark thus compares the controllers as optimisers of a real, data-dependent, deterministic
  objective under the real latency model; it does not predict final accuracies.
- ``tiny-train``: a tiny real training (`accelnas.train.proxy_train.train_proxy`: ``TINY_TRAIN`` budget on a
  ``TINY_TRAIN["subset"]``-image class-balanced training subset, accuracy on the held-out validation
  split). Real, but ~30-50 s per architecture on 2 busy cores: use it with small --trials.
- ``supernet``: the candidate's subnet on the params' weight-sharing supernet
  (`accelnas.search.supernet`, trained once with the ``supernet`` section on the params' proxy data and
  kept in ``--supernet-file``): validation accuracy after BatchNorm recalibration, real accuracy at
  about a second per candidate.

The objective is deterministic per architecture (fixed seed, fixed images), so it is cached per
``arch.encode()`` across controllers and seeds: the same architecture gets the same score whichever
search proposes it (the trial seed `run_search` passes is ignored on purpose).

Reported per controller (mean +- std over seeds, and the per-seed values):

- ``best_reward``: the best reward of the run;
- ``hypervolume``: Pareto hypervolume (`accelnas.report.pareto.hypervolume_2d`) of the completed trials'
  (accuracy, latency on the target accelerator) against the FIXED reference point (accuracy 0,
  latency ``HV_REF_FACTOR`` x target latency = the default latency cap), units accuracy x ms;
- ``best_so_far``: mean best reward over the first k trials at a few checkpoints;
- versus random: mean differences, per-seed wins (same seed: evolution and random share their
  first ``population`` proposals) and P(controller > random) over all seed pairs.

``--json`` prints one JSON object (settings and figures) on one line of stdout; the table goes to
stderr then. ``--fast`` is a smoke preset for tests (2 seeds x 6 trials, population 3; tiny-train:
500 images, 1 epoch). Default: 3 controllers x 5 seeds x 40 trials with params/default.yaml's
population 8, sample size 3, learning rate 0.2 and baseline decay 0.9: about 8 minutes on 2 idle
cores, 15-20 when they are shared with other jobs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from accelnas import params as P  # noqa: E402
from accelnas.report.pareto import hypervolume_2d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = ROOT / "params" / "default.yaml"
CONTROLLERS = ("evolution", "policy_gradient", "random")

OBJECTIVE_SEED = 0           # weight init of the scored networks, training seed of tiny-train
DATA_SEED = 0                # the CIFAR-10 split / subset
NASWOT_BATCH = 64            # images in the NASWOT kernel (N x N)
NASWOT_RESOLUTION = 32       # proxy input pixels (CIFAR-10 native)
NASWOT_WIDTH = 0.25          # proxy width multiplier of the scored networks
NASWOT_SUBSET = 1000         # training images loaded (the batch is the first NASWOT_BATCH)
# the fixed map S -> accuracy (see the module docstring), set once by hand from CALIBRATION
ACC_LO, ACC_HI = 0.10, 0.60  # chance level of 10 classes .. an upper asymptote
S_MID, S_SCALE = 690.0, 75.0
CALIBRATION = (
    "NASWOT (batch 64, 32 px, width 0.25) of 40 admissible random architectures of "
    "params/default.yaml (coral <= 10 ms): S 618..711, median 668, std 23.5. Ten other admissible "
    "random architectures trained with the params' proxy budget (5000 CIFAR-10 images, 3 epochs, "
    "32 px, width 0.5, ~2 min each): validation accuracy 0.21..0.36, median 0.32; their S agrees "
    "only weakly with that accuracy (Kendall tau 0.16, p = 0.6, n = 10; a 3-epoch proxy is noisy "
    "too). The map puts the median S at ~0.31 accuracy with a slope of ~0.0017 per unit of S, so "
    "the sampled architectures map to ~0.24..0.39, the location and spread of the trained "
    "accuracies.")
TINY_TRAIN = dict(subset=2000, epochs=2, batch_size=64, resolution=32, width_mult=0.25)
HV_REF_FACTOR = 2.0          # hypervolume reference latency = this x the target latency
NON_SCORED_ACTIVATIONS = ("sigmoid", "hsigmoid", "softmax")


# ------------------------------------------------------------------------------------ objectives

def naswot_to_accuracy(score: float) -> float:
    """The fixed monotone map of a NASWOT score into [0, 1] (module docstring)."""
    return float(ACC_LO + (ACC_HI - ACC_LO) / (1.0 + math.exp(-(score - S_MID) / S_SCALE)))


class NaswotObjective:
    """``train_fn`` scoring an architecture by NASWOT on a fixed batch of real images."""

    name = "naswot"

    def __init__(self, data, *, batch: int = NASWOT_BATCH, resolution: int = NASWOT_RESOLUTION,
                 width_mult: float = NASWOT_WIDTH, seed: int = OBJECTIVE_SEED):
        if len(data.y_train) < batch:
            raise ValueError(f"NASWOT needs {batch} training images, the data has {len(data.y_train)}")
        self.batch, self.resolution, self.width_mult, self.seed = batch, resolution, width_mult, seed
        self.num_classes = data.num_classes
        xb, _ = next(iter(data.pipeline("train", batch_size=batch, resolution=resolution,
                                        training=False)))
        self.images = xb

    def settings(self) -> dict:
        return {"objective": self.name, "batch": self.batch, "resolution": self.resolution,
                "width_mult": self.width_mult, "seed": self.seed,
                "map": {"acc_lo": ACC_LO, "acc_hi": ACC_HI, "s_mid": S_MID, "s_scale": S_SCALE,
                        "formula": "acc_lo + (acc_hi - acc_lo) * sigmoid((S - s_mid) / s_scale)"},
                "calibration": CALIBRATION}

    def score(self, arch) -> float:
        """``log|det K|`` of the candidate's proxy at initialisation (module docstring)."""
        import keras
        import tensorflow as tf

        from accelnas.space.builder import build
        from accelnas.train.proxy import proxy_arch

        p = proxy_arch(arch, resolution=self.resolution, width_mult=self.width_mult,
                       num_classes=self.num_classes)
        keras.backend.clear_session()
        keras.utils.set_random_seed(int(self.seed))
        model = build(p)
        taps = [layer.input for layer in model.layers if isinstance(layer, keras.layers.Activation)
                and not layer.name.endswith(NON_SCORED_ACTIVATIONS)]
        acts = keras.Model(model.input, taps)(self.images, training=True)
        n = self.batch
        # codes in {-1, +1}: s @ s.T = units - 2 * hamming, so K = units - hamming = (units + s s^T) / 2
        signs = tf.concat([tf.reshape(tf.where(a > 0, 1.0, -1.0), (n, -1)) for a in acts], axis=1)
        units = float(signs.shape[1])
        k = (units + tf.matmul(signs, signs, transpose_b=True).numpy().astype(np.float64)) / 2.0
        sign, logdet = np.linalg.slogdet(k)
        return float(logdet) if sign > 0 else float("-inf")

    def __call__(self, arch, data, seed) -> dict:
        s = self.score(arch)
        if not np.isfinite(s):
            raise RuntimeError(f"NASWOT kernel is singular for {arch.encode()}")
        return {"accuracy": naswot_to_accuracy(s), "naswot": s}


class TinyTrainObjective:
    """``train_fn`` training the candidate's proxy with the tiny `TINY_TRAIN` budget."""

    name = "tiny-train"

    def __init__(self, data, *, seed: int = OBJECTIVE_SEED, **budget):
        self.budget = {**{k: v for k, v in TINY_TRAIN.items() if k != "subset"}, **budget}
        self.seed = seed

    def settings(self) -> dict:
        return {"objective": self.name, "seed": self.seed, "subset": TINY_TRAIN["subset"],
                **self.budget}

    def __call__(self, arch, data, seed) -> dict:
        from accelnas.train.proxy_train import train_proxy

        r = train_proxy(arch, data, seed=self.seed, **self.budget)
        return {"accuracy": float(r.accuracy), "val_loss": float(r.val_loss),
                "train_wall_s": float(r.wall_s)}


class SupernetObjective:
    """``train_fn`` scoring an architecture on the params' weight-sharing supernet (real accuracy:
    its subnet's validation accuracy after BatchNorm recalibration, `accelnas.search.supernet`),
    trained once on the params' proxy data and kept in ``path`` across invocations."""

    name = "supernet"

    def __init__(self, params, data, path: Path, log=None):
        from accelnas.search.supernet import supernet_evaluator, trained_supernet
        from accelnas.search.tuner import setup

        self.net = trained_supernet(setup(params).space, params, data, path, log=log)
        self.fn = supernet_evaluator(self.net, params)
        self.params = params

    def settings(self) -> dict:
        from accelnas.search.supernet import training_meta

        return {"objective": self.name, "fingerprint": self.net.fingerprint(),
                "training": training_meta(self.params), "supernet": self.params["supernet"]}

    def __call__(self, arch, data, seed) -> dict:
        return self.fn(arch, data, seed)


class Cached:
    """Caches a deterministic objective per ``arch.encode()`` (hits, misses, seconds spent)."""

    def __init__(self, fn):
        self.fn = fn
        self.cache: dict[str, dict] = {}
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0

    def __call__(self, arch, data, seed) -> dict:
        key = arch.encode()
        if key in self.cache:
            self.hits += 1
        else:
            self.misses += 1
            t = time.perf_counter()
            self.cache[key] = dict(self.fn(arch, data, seed))
            self.seconds += time.perf_counter() - t
        return dict(self.cache[key])

    def load(self, path: Path, settings: dict) -> None:
        """Take the scores of ``path`` (written by `save`) when they were made with ``settings``."""
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("settings") != _clean(settings):
                raise SystemExit(f"--cache {path} holds scores of another objective setting; "
                                 "remove it or pass another file")
            self.cache.update(saved["scores"])

    def save(self, path: Path, settings: dict) -> None:
        path.write_text(json.dumps({"settings": _clean(settings), "scores": _clean(self.cache)}))

    def stats(self) -> dict:
        return {"unique_architectures": self.misses, "cache_hits": self.hits,
                "loaded_from_file": len(self.cache) - self.misses,
                "objective_s": round(self.seconds, 1),
                "objective_s_per_arch": round(self.seconds / max(1, self.misses), 2)}


def load_data(objective: str, fast: bool):
    from accelnas.train.data import load_arrays

    subset = NASWOT_SUBSET
    if objective == "tiny-train":
        subset = 500 if fast else TINY_TRAIN["subset"]
    # val_fraction 1/3: a validation split of subset/2 images (tiny-train's accuracy is less noisy)
    return load_arrays("cifar10", seed=DATA_SEED, subset=subset, val_fraction=1 / 3)


# --------------------------------------------------------------------------------------- metrics

def _stats(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}


def run_metrics(df, *, target: str, reference: tuple[float, float], checkpoints) -> dict:
    """Best reward, hypervolume and best-so-far curve of one run's trials frame."""
    df = df.sort_values(["finished", "trial_id"], na_position="last").reset_index(drop=True)
    done = df[df.status == "completed"]
    lat_col = f"latency_ms_{target}"
    rewards = df["reward"].where(df.status == "completed").astype(float).to_numpy()
    best_so_far = np.fmax.accumulate(np.nan_to_num(rewards, nan=-np.inf))
    curve = {int(k): float(best_so_far[min(k, len(best_so_far)) - 1]) for k in checkpoints}
    pts = done[["accuracy", lat_col]].to_numpy(dtype=float)
    hv = hypervolume_2d(pts, reference, maximize=(True, False)) if len(pts) else 0.0
    best = done.loc[done.reward.idxmax()] if len(done) else None
    return {"best_reward": float(done.reward.max()) if len(done) else float("nan"),
            "hypervolume": float(hv), "best_so_far": curve,
            "completed": int(len(done)), "failed": int((df.status == "failed").sum()),
            "best_accuracy": float(best.accuracy) if best is not None else None,
            "best_latency_ms": float(best[lat_col]) if best is not None else None,
            "best_arch": best.arch if best is not None else None}


def versus(a: list[float], b: list[float]) -> dict:
    """``a`` against ``b`` (per-seed lists): mean difference, wins at equal seed, P(a > b)."""
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    pairs = [(x > y) + 0.5 * (x == y) for x in a_ for y in b_]
    n = min(len(a_), len(b_))
    return {"mean_diff": float(a_.mean() - b_.mean()),
            "wins_same_seed": f"{int((a_[:n] > b_[:n]).sum())}/{n}",
            "ties_same_seed": int((a_[:n] == b_[:n]).sum()),
            "p_better": float(np.mean(pairs)) if pairs else float("nan")}


# ------------------------------------------------------------------------------------------ main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 40; fast 6)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..K-1 per controller (default 5; fast 2)")
    ap.add_argument("--controllers", nargs="+", default=list(CONTROLLERS), choices=CONTROLLERS)
    ap.add_argument("--objective", default="naswot", choices=("naswot", "tiny-train", "supernet"))
    ap.add_argument("--supernet-file", default=str(Path(tempfile.gettempdir()) / "search_bench_supernet.npz"),
                    help="supernet objective: where the trained supernet is kept (reused when it "
                         "matches the params)")
    ap.add_argument("--population", type=int, default=None,
                    help="evolution population / policy-gradient batch (default: the params "
                         "file's, 8; fast 3)")
    ap.add_argument("--sample-size", type=int, default=None,
                    help="tournament size (default: the params file's, 3; fast 2)")
    ap.add_argument("--learning-rate", type=float, default=None,
                    help="policy-gradient step size (default: the params file's)")
    ap.add_argument("--baseline-decay", type=float, default=None,
                    help="policy-gradient baseline decay (default: the params file's)")
    ap.add_argument("--pg-variant", action="append", default=[], metavar="LR:BD:POP",
                    help="also run policy_gradient with this learning rate, baseline decay and "
                         "batch (repeatable), e.g. 1.0:0.5:4")
    ap.add_argument("--evo-variant", action="append", default=[], metavar="POP:SAMPLE",
                    help="also run evolution with this population and tournament size (repeatable)")
    ap.add_argument("--params", default=str(DEFAULT_PARAMS), help="params YAML (search space, "
                    "accelerators, targets, reward, latency method)")
    ap.add_argument("--cache", default=None, metavar="FILE",
                    help="keep the objective's scores in this JSON file across invocations (they "
                         "are deterministic per architecture; refused when made with other settings)")
    ap.add_argument("--fast", action="store_true", help="smoke preset for tests")
    a = ap.parse_args(argv)
    a.trials = a.trials or (6 if a.fast else 40)
    a.seeds = a.seeds or (2 if a.fast else 5)
    if a.fast:
        a.population = a.population or 3
        a.sample_size = a.sample_size or 2
    if a.population and a.sample_size:
        a.sample_size = min(a.sample_size, a.population)
    return a


def _pg_variant(spec: str) -> tuple[str, str, dict]:
    try:
        lr, bd, pop = spec.split(":")
        over = {"search.learning_rate": float(lr), "search.baseline_decay": float(bd),
                "search.population": int(pop)}
    except ValueError:
        raise SystemExit(f"--pg-variant wants LR:BD:POP (e.g. 1.0:0.5:4), got {spec!r}") from None
    label = f"policy_gradient(lr={float(lr):g},bd={float(bd):g},pop={int(pop)})"
    return label, "policy_gradient", over


def _evo_variant(spec: str) -> tuple[str, str, dict]:
    try:
        pop, sample = (int(v) for v in spec.split(":"))
    except ValueError:
        raise SystemExit(f"--evo-variant wants POP:SAMPLE (e.g. 10:5), got {spec!r}") from None
    label = f"evolution(pop={pop},sample={sample})"
    return label, "evolution", {"search.population": pop, "search.sample_size": sample}


def main(argv=None) -> dict:
    a = parse_args(argv)
    out = sys.stderr if a.json else sys.stdout

    def say(*line):
        print(*line, file=out, flush=True)

    t_start = time.perf_counter()
    from accelnas.search.tuner import run_search  # imports keras-tuner / TensorFlow

    base = P.load(a.params)
    over = {"search.trials": a.trials}
    if a.population:
        over["search.population"] = a.population
        over["search.sample_size"] = min(a.sample_size or base["search"]["sample_size"], a.population)
    if a.sample_size:
        over["search.sample_size"] = a.sample_size
    if a.learning_rate is not None:
        over["search.learning_rate"] = a.learning_rate
    if a.baseline_decay is not None:
        over["search.baseline_decay"] = a.baseline_decay
    over["search.start_from"] = []  # controllers compared from scratch, not from the skeleton
    params = P.override(base, over)
    s = params["search"]
    a.population, a.sample_size = s["population"], s["sample_size"]
    target = params["target_accelerator"]
    t_target = float(s["target_latency_ms"][target])
    reference = (0.0, HV_REF_FACTOR * t_target)
    checkpoints = sorted({max(1, round(a.trials * f)) for f in (0.25, 0.5, 0.75, 1.0)})

    if a.objective == "supernet":
        from accelnas.train.load import load_proxy

        data = load_proxy(params)
        fn = SupernetObjective(params, data, Path(a.supernet_file), log=say)
    else:
        data = load_data(a.objective, a.fast)
    if a.objective == "naswot":
        fn = NaswotObjective(data)
    elif a.objective == "tiny-train":
        fn = TinyTrainObjective(data, **({"epochs": 1} if a.fast else {}))
    objective = Cached(fn)
    if a.cache:
        objective.load(Path(a.cache), fn.settings())

    runs = [(c, c, {}) for c in a.controllers]
    runs += [_pg_variant(v) for v in a.pg_variant] + [_evo_variant(v) for v in a.evo_variant]
    seeds = list(range(a.seeds))
    say(f"search_bench: {len(runs)} controller settings x {len(seeds)} seeds x {a.trials} trials, "
        f"objective {a.objective}, reward on {target} (T = {t_target:g} ms, alpha {s['alpha']}, "
        f"beta {s['beta']}, cap {s['latency_cap']:g} x T), latency {params['latency']['method']}")
    per_run: dict[str, list[dict]] = {}
    for label, controller, o in runs:
        if o.get("search.population", a.population) < o.get("search.sample_size", a.sample_size):
            o = {**o, "search.sample_size": o["search.population"]}  # unused by policy_gradient
        p = P.override(params, o) if o else params
        for seed in seeds:
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="search_bench_") as d, \
                    contextlib.redirect_stdout(io.StringIO()):
                df = run_search(p, d, controller=controller, seed=seed, trials=a.trials, data=data,
                                train_fn=objective, progress=False, log=None)
            m = run_metrics(df, target=target, reference=reference, checkpoints=checkpoints)
            m.update(seed=seed, wall_s=round(time.perf_counter() - t, 1))
            per_run.setdefault(label, []).append(m)
            say(f"  {label:<40} seed {seed}: best reward {m['best_reward']:.4f}  hv "
                f"{m['hypervolume']:.3f}  completed {m['completed']}  ({m['wall_s']:.0f} s; "
                f"{objective.misses} unique archs so far)")

    if a.cache:
        objective.save(Path(a.cache), fn.settings())
    results = {}
    for label, ms in per_run.items():
        results[label] = {
            "best_reward": _stats([m["best_reward"] for m in ms]),
            "hypervolume": _stats([m["hypervolume"] for m in ms]),
            "best_so_far": {str(k): _stats([m["best_so_far"][k] for m in ms]) for k in checkpoints},
            "best_accuracy": _stats([m["best_accuracy"] for m in ms]),
            "best_latency_ms": _stats([m["best_latency_ms"] for m in ms]),
            "failed_trials": int(sum(m["failed"] for m in ms)),
            "runs": ms,
        }
    if "random" in results:
        for label, r in results.items():
            if label != "random":
                r["vs_random"] = {k: versus(r[k]["values"], results["random"][k]["values"])
                                  for k in ("best_reward", "hypervolume")}
    wall = time.perf_counter() - t_start
    report = {
        "benchmark": "search_bench",
        "settings": {
            "params": _short(a.params),
            "trials": a.trials, "seeds": seeds, "controllers": [r[0] for r in runs],
            "population": a.population, "sample_size": a.sample_size,
            "learning_rate": s["learning_rate"], "baseline_decay": s["baseline_decay"],
            "pg_variants": a.pg_variant, "evo_variants": a.evo_variant, "target_accelerator": target,
            "target_latency_ms": dict(s["target_latency_ms"]), "alpha": s["alpha"], "beta": s["beta"],
            "reward": s["reward"], "latency_cap": s["latency_cap"],
            "latency_method": params["latency"]["method"], "accelerators": list(params["accelerators"]),
            "hv_reference": {"accuracy": reference[0], f"latency_ms_{target}": reference[1]},
            "checkpoints": checkpoints, "fast": a.fast,
            "data": data.summary() | {"split_seed": DATA_SEED},
            "objective": fn.settings(),
        },
        "results": results,
        "cache": objective.stats(),
        "wall_s": round(wall, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    print_table(report, say)
    if a.json:
        print(json.dumps(_clean(report)))
    return report


def print_table(report: dict, say) -> None:
    res = report["results"]
    cps = report["settings"]["checkpoints"]
    say("")
    head = (f"{'controller':<40} {'best reward':>17} {'hypervolume':>15} "
            + " ".join(f"{'@' + str(k):>7}" for k in cps) + f" {'best acc':>9} {'best lat':>9}")
    say(head)
    for label, r in res.items():
        br, hv = r["best_reward"], r["hypervolume"]
        say(f"{label:<40} {br['mean']:.4f} ± {br['std']:.4f} {hv['mean']:>7.3f} ± {hv['std']:.3f} "
            + " ".join(f"{r['best_so_far'][str(k)]['mean']:>7.4f}" for k in cps)
            + f" {r['best_accuracy']['mean']:>9.3f} {r['best_latency_ms']['mean']:>7.2f}ms")
    for label, r in res.items():
        if "vs_random" in r:
            v = r["vs_random"]
            say(f"  {label} vs random: best reward {v['best_reward']['mean_diff']:+.4f} "
                f"(wins {v['best_reward']['wins_same_seed']}, P(better) {v['best_reward']['p_better']:.2f}); "
                f"hypervolume {v['hypervolume']['mean_diff']:+.3f} "
                f"(wins {v['hypervolume']['wins_same_seed']}, P(better) {v['hypervolume']['p_better']:.2f})")
    c = report["cache"]
    say(f"objective {report['settings']['objective']['objective']}: {c['unique_architectures']} unique "
        f"architectures ({c['objective_s_per_arch']} s each), {c['cache_hits']} cache hits; "
        f"wall {report['wall_s']:.0f} s")


def _short(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


if __name__ == "__main__":
    main()
