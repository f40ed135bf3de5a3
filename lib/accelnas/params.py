"""Run parameters: a schema declared as data, strict validation, defaults, overrides.

Pure module (no TensorFlow). A params file (``params/smoke.yaml``, ``default.yaml``, ``paper.yaml``)
is read with ``yaml.safe_load``, checked against `SCHEMA` and returned as plain nested dicts with
every default filled in. An unknown key, a value of the wrong type or an impossible value raises
`ParamsError` naming the file, the dotted key (``proxy.epochs``), the bad value and what is allowed.

The schema is data: nested dicts whose leaves are `Key` (type, default, one-line doc, allowed
values or range). Adding a parameter is adding one `Key` line; `validate` is generic and is also
used for the accelerator files (`accelnas.latency.accelerator`). Checks that involve several keys live in
`_cross_check`.

Example::

    p = params.load("params/smoke.yaml")
    p = params.override(p, {"proxy.epochs": 1})
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from accelnas.schema import (REQUIRED, Key, ParamsError, _suggest, describe, frozen as _frozen,  # noqa: F401
                             schema_rows as _schema_rows, thaw, validate)
from accelnas.space import blocks
from accelnas.space.arch import ACTIVATIONS, SE_STYLES
from accelnas.space.search_space import EDGETPU_S_STAGES as _EDGETPU_S
from accelnas.space.zoo import names as _zoo_names
from accelnas.train.strategy import JIT, PRECISIONS, STRATEGIES


EDGETPU_S_STAGES = [dataclasses.asdict(s) for s in _EDGETPU_S]
"""The default skeleton (`accelnas.space.search_space.EDGETPU_S_STAGES`) as params data."""

_POS_INT = dict(min=1)  # with Key(int, ...)

SCHEMA: dict = {
    "run_name": Key(str, "default", "names the output folder outputs/<run_name>/",
                    pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*", hint="letters, digits, _ . - (a folder name)"),
    "seed": Key(int, 0, "seed of the one RNG every random decision draws from", min=0),
    "dataset": Key(str, "cifar10", "training data of the proxy task",
                   pattern=r"cifar10|synthetic|folder:.+|tfds:[A-Za-z0-9_./:-]+|tfrecord:.+",
                   hint="cifar10, synthetic, folder:PATH, tfds:NAME or tfrecord:GLOB"),
    "accelerators": Key(list, ["coral", "pixel4"],
                        "accelerators to model: names shipped in accelnas/resources/hardware/ or YAML paths",
                        item=Key(str), min_len=1, unique=True),
    "target_accelerator": Key(str, "coral", "the accelerator the search optimises for "
                                            "(one of accelerators)"),
    "search_space": {
        "resolution": Key(int, 224, "input size (pixels) at which latency is modelled", min=8, max=2048),
        "num_classes": Key(int, 1000, "classifier outputs of the deployed model", min=2),
        "stem_channels": Key(int, 32, "output channels of the 3x3 stride-2 stem conv", min=1),
        "head_channels": Key(int, 1280, "1x1 head conv channels before pooling (0: none)", min=0),
        "activation": Key(str, "relu", "activation of stem and head, and the default of blocks",
                          choices=ACTIVATIONS),
        "se_style": Key(str, "mobilenetv3", "squeeze-excite flavour when se_ratio > 0",
                        choices=SE_STYLES),
        "stages": Key(list, EDGETPU_S_STAGES, "skeleton: stride, base channels, base repeats per stage",
                      min_len=1, item={"stride": Key(int, REQUIRED, "stride of the stage's first block",
                                                     choices=(1, 2)),
                                       "channels": Key(int, REQUIRED, "base output channels", min=1),
                                       "repeats": Key(int, REQUIRED, "base number of blocks", min=1)}),
        "block_types": Key(list, ["ibn", "fused", "conv"], "block type choices per stage",
                           item=Key(str, choices=blocks.searchable), min_len=1, unique=True),
        "kernels": Key(list, [3, 5], "depthwise / fused kernel size choices",
                       item=Key(int, choices=(1, 3, 5, 7)), min_len=1, unique=True),
        "expand_ratios": Key(list, [4, 6, 8], "expansion ratio choices of ibn / fused blocks",
                             item=Key(float, min=1, max=16), min_len=1, unique=True),
        "width_mults": Key(list, [0.75, 1.0, 1.25], "output-channel multipliers of the base channels "
                                                    "(rounded with make_divisible)",
                           item=Key(float, gt=0, max=4), min_len=1, unique=True),
        "repeat_deltas": Key(list, [-1, 0, 1], "added to the base repeats (at least 1 block remains)",
                             item=Key(int, min=-8, max=8), min_len=1, unique=True),
        "se_ratios": Key(list, [0.0, 0.25], "squeeze-excite ratio choices (0: no SE)",
                         item=Key(float, min=0, max=0.5), min_len=1, unique=True),
        "activations": Key(list, ["relu", "relu6", "hswish", "swish"], "block activation choices",
                           item=Key(str, choices=ACTIVATIONS), min_len=1, unique=True),
    },
    "samples": Key(int, 200, "architectures notebook 01 samples to show the space", **_POS_INT),
    "proxy": {
        "subset": Key(int, 5000, "training images of the proxy task", **_POS_INT),
        "val_images": Key(int, 0, "validation images (from the training pool, disjoint from the subset) "
                                  "that score candidates; 0: 10 % of train + val", min=0),
        "epochs": Key(int, 3, "training epochs per candidate", **_POS_INT),
        "resolution": Key(int, 32, "training input size of the proxy task, pixels", min=8, max=1024),
        "batch_size": Key(int, 128, "training batch size", **_POS_INT),
        "width_mult": Key(float, 0.5, "width multiplier applied to candidates for proxy training",
                          gt=0, max=4),
    },
    "search": {
        "controller": Key(str, "evolution", "search algorithm (random is the baseline)",
                          choices=("evolution", "policy_gradient", "random")),
        "trials": Key(int, 24, "candidates trained and scored", **_POS_INT),
        "population": Key(int, 8, "evolution: population size; policy_gradient: samples per update",
                          **_POS_INT),
        "sample_size": Key(int, 3, "evolution: tournament size (<= population)", **_POS_INT),
        "target_latency_ms": Key(dict, {"coral": 5.0, "pixel4": 3.6},
                                 "latency target T per accelerator name, ms",
                                 item=Key(float, gt=0), min_len=1),
        "alpha": Key(float, -0.07, "reward exponent when latency <= T (MnasNet soft: -0.07)",
                     min=-2, max=0),
        "beta": Key(float, -0.07, "reward exponent when latency > T (hard constraint: -1)",
                    min=-2, max=0),
        "reward": Key(str, "target", "which latencies the reward uses: target (target_accelerator "
                      "only), product (a factor per accelerator), worst (the most penalised one)",
                      choices=("target", "product", "worst")),
        "evaluator": Key(str, "standalone", "stage-1 score of a candidate: standalone (its proxy "
                     "trained from scratch) or supernet (its subnet of a weight-sharing supernet "
                     "trained once, section supernet)", choices=("standalone", "supernet")),
        "per_accelerator": Key(bool, False, "also search once per other accelerator of accelerators "
                               "with it as the target (project <controller>@<name>; stage-1 scores "
                               "shared): each accelerator's own block choices"),
        "start_from": Key(list, ["efficientnet_edgetpu_s"], "zoo models whose nearest members of the "
                          "search space are the first trials (warm start: evolution mutates from them; "
                          "[]: none)", item=Key(str, choices=tuple(_zoo_names())), unique=True),
        "latency_cap": Key(float, 2.0, "reject before training a candidate slower than latency_cap "
                           "x T on any accelerator the reward uses (0: no cap)", min=0),
        "learning_rate": Key(float, 1.0, "policy_gradient: step size of the REINFORCE update on "
                             "the choice logits (benchmarks/search_bench.py: 1.0 beats 0.2 at ~40 trials)",
                             gt=0, max=10),
        "baseline_decay": Key(float, 0.9, "policy_gradient: moving-average decay of the reward "
                              "baseline", min=0, max=0.999),
    },
    "supernet": {
        "epochs": Key(int, 40, "epochs of weight-sharing training over proxy.subset images (one "
                               "sampled path per batch; the sandwich rule trains four; rule distill: "
                               "after the teacher's epochs)", **_POS_INT),
        "rule": Key(str, "distill", "how the shared weights learn: uniform (one random path per "
                                    "batch, end to end), sandwich (largest, smallest and two random "
                                    "paths per batch) or distill (every stage of a random path learns "
                                    "the teacher path's output of that stage: blockwise distillation)",
                    choices=("uniform", "sandwich", "distill")),
        "teacher": Key(str, "efficientnet_edgetpu_s", "rule distill: the zoo model whose nearest "
                       "member of the search space is the teacher path", choices=tuple(_zoo_names())),
        "teacher_epochs": Key(int, 6, "rule distill: epochs the teacher path trains alone (over "
                              "proxy.subset) before the stages learn from it; then supernet.epochs "
                              "of distillation", **_POS_INT),
        "calib_images": Key(int, 256, "training images that recalibrate BatchNorm per candidate",
                            **_POS_INT),
        "eval_images": Key(int, 0, "validation images that score a candidate (0: the whole "
                                   "validation split)", min=0),
    },
    "stage2": {
        "include_start": Key(bool, True, "also train the search's start points (search.start_from) "
                             "at stage 2, after the finalists: the searched model replaces a start "
                             "point only if it beats it there"),
        "finalists": Key(int, 3, "best distinct stage-1 candidates of the target's search trained "
                                 "again at stage 2 with every report seed; the best by stage-2 "
                                 "reward is the searched model", **_POS_INT),
        "subset": Key(int, 10000, "training images of every stage-2 training (finalists, scaled "
                                  "variants, baselines)", **_POS_INT),
        "epochs": Key(int, 6, "epochs of every stage-2 training", **_POS_INT),
        "width_mult": Key(float, 0.5, "width multiplier of stage-2 trainings", gt=0, max=4),
        "fidelity_candidates": Key(int, 0, "correlation candidates notebook 03 scores at stage 1 and "
                                           "trains at stage 2 (every report seed) to measure how far "
                                           "the stage-1 ranking holds (0: skip; >= 12 for a usable "
                                           "interval)", min=0),
    },
    "train": {
        "strategy": Key(str, "auto", "tf.distribute strategy of every training: auto (mirrored over "
                        "several local GPUs, else one device), one_device, mirrored (local GPUs or "
                        "logical CPUs), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG)",
                        choices=STRATEGIES),
        "precision": Key(str, "auto", "Keras dtype policy: float32, mixed_float16, mixed_bfloat16; "
                         "auto: mixed_float16 on a GPU, float32 on a CPU", choices=PRECISIONS),
        "jit_compile": Key(str, "auto", "XLA: on, off; auto: on with a GPU, off on a CPU", choices=JIT),
        "scale_batch": Key(bool, False, "false: batch_size is the global batch, split over the "
                           "replicas; true: each replica takes batch_size and the learning rate is "
                           "scaled by the replicas (linear scaling rule, after the warm-up)"),
        "sync_batchnorm": Key(bool, False, "BatchNorm statistics over the global batch instead of "
                              "each replica's share"),
        "logical_cpus": Key(int, 0, "split the CPU into this many logical devices (0 or 1: no "
                            "split), to run mirrored without GPUs", min=0, max=64),
    },
    "latency": {
        "method": Key(str, "apm", "latency estimator used in the search loop",
                      choices=("apm", "sim")),
        "measure_threads": Key(int, 2, "CPU threads of host TFLite measurements", **_POS_INT),
    },
    "scaling": {
        "coefficients": Key(list, [{"alpha": 1.2, "beta": 1.1, "gamma": 1.15},
                                   {"alpha": 1.6, "beta": 1.05, "gamma": 1.05},
                                   {"alpha": 1.15, "beta": 1.3, "gamma": 1.0}],
                            "candidate (depth alpha, width beta, resolution gamma) coefficients, "
                            "each scored at phi = 1 with the proxy and the latency model",
                            min_len=1,
                            item={"alpha": Key(float, REQUIRED, "depth coefficient", min=1, max=3),
                                  "beta": Key(float, REQUIRED, "width coefficient", min=1, max=3),
                                  "gamma": Key(float, REQUIRED, "resolution coefficient", min=1, max=3)}),
        "latency_targets": Key(list, [1.0, 1.5, 2.5],
                               "-S/-M/-L targets as multiples of the base model's latency on the "
                               "target accelerator", item=Key(float, gt=0), min_len=1, unique=True),
    },
    "report": {
        "baselines": Key(list, ["mobilenet_v3_small", "mobilenet_v3_large", "resnet50", "mobilenet_v2",
                                "efficientnet_b0", "efficientnet_edgetpu_s", "mobilenet_edgetpu"],
                         "zoo models trained under the same proxy budget",
                         item=Key(str, choices=tuple(_zoo_names())), unique=True),
        "seeds": Key(list, [0], "training seeds per model (mean and spread are reported)",
                     item=Key(int, min=0), min_len=1, unique=True),
    },
}


def schema_rows(spec: dict | None = None, prefix: str = "") -> list[dict]:
    """The run schema as table rows: key (dotted), type, default, allowed, doc."""
    return _schema_rows(SCHEMA if spec is None else spec, prefix)


def frozen(params: Mapping) -> Any:
    """Validated params as typed, frozen sections (``p.proxy.epochs``; `accelnas.schema.frozen`)."""
    return _frozen(params, SCHEMA, "Params")


# ---------------------------------------------------------------------------------------------
# run params

def _cross_check(p: dict, source: str, base_dir: Path | None) -> dict:
    """Checks across keys; resolves accelerator YAML paths to absolute paths (cwd-independent)."""
    from accelnas.latency import accelerator as hardware

    names = []
    for i, entry in enumerate(p["accelerators"]):
        try:
            acc = hardware.load_accelerator(entry, base_dir=base_dir)
        except ParamsError as e:
            raise ParamsError(source, f"accelerators[{i}]", f"{entry!r} does not resolve: {e}") from None
        if acc.name in names:
            raise ParamsError(source, f"accelerators[{i}]", f"{entry!r} repeats accelerator {acc.name!r}")
        names.append(acc.name)
        if hardware.is_path(entry):
            p["accelerators"][i] = acc.source
    if p["target_accelerator"] not in names:
        raise ParamsError(source, "target_accelerator",
                          f"got {p['target_accelerator']!r}, which is not in accelerators; "
                          f"{_suggest(p['target_accelerator'], names)}allowed: {', '.join(names)}")
    targets = p["search"]["target_latency_ms"]
    for name in names:
        if name not in targets:
            raise ParamsError(source, f"search.target_latency_ms.{name}",
                              f"missing: every accelerator needs a latency target in ms "
                              f"(given for: {', '.join(targets)})")
    known = set(names) | set(hardware.available())
    for name in targets:
        if name not in known:
            raise ParamsError(source, f"search.target_latency_ms.{name}",
                              f"unknown accelerator; {_suggest(name, names)}"
                              f"allowed keys: {', '.join(names)}")
    s = p["search"]
    if s["sample_size"] > s["population"]:
        raise ParamsError(source, "search.sample_size", f"got {s['sample_size']}, larger than "
                                                        f"search.population ({s['population']}); "
                                                        f"allowed: integer in [1, {s['population']}]")
    return p


def load_dict(data: Any, source: str = "<dict>", base_dir: str | Path | None = None) -> dict:
    """Validate a params mapping (e.g. parsed YAML); return plain nested dicts with defaults filled.

    Args:
        data: the mapping (None: all defaults).
        source: named in error messages (the file path).
        base_dir: where relative accelerator YAML paths are looked up first (then the cwd).

    Raises:
        ParamsError: unknown key, wrong type, impossible value or an inconsistency between keys.
    """
    p = validate(data, SCHEMA, source)
    return _cross_check(p, source, Path(base_dir) if base_dir is not None else None)


def load(path: str | Path) -> dict:
    """Read and validate a params YAML file (see `load_dict`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ParamsError(str(path), "", f"cannot read the params file ({e.strerror}); "
                                         f"files in params/: {', '.join(available())}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParamsError(str(path), "", f"not valid YAML: {e}") from None
    return load_dict(data, source=str(path), base_dir=path.resolve().parent)


def override(params: dict, overrides: Mapping[str, Any], source: str = "<override>") -> dict:
    """A copy of validated ``params`` with dotted keys replaced, validated again.

    ``override(p, {"proxy.epochs": 1, "search.target_latency_ms.coral": 4.0})``. A whole list is
    replaced at once (``{"accelerators": ["coral"]}``).
    """
    p = copy.deepcopy(params)
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        node = p
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ParamsError(source, ".".join(parts[:i + 1]),
                                  f"is a {type(child).__name__}, not a section: cannot set {dotted!r}")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return load_dict(p, source=source)


def params_dir() -> Path:
    """``params/`` of the repository this package is installed from."""
    return Path(__file__).resolve().parents[2] / "params"


def available() -> list[str]:
    """Params files shipped in ``params/`` (file names)."""
    return sorted(f.name for f in params_dir().glob("*.yaml"))
