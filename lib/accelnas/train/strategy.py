"""Where training runs: devices, the `tf.distribute` strategy, the precision, XLA (params ``train``).

One process trains under one `Setup`, made once by `configure` from the params' ``train``
section and returned by `current` to every training of the process (stand-alone proxies, the
supernet, stage 2, the scaled variants, the baselines, ``accelnas train``):

- ``strategy``: ``one_device`` (TensorFlow's default strategy: the first GPU, else the CPU),
  ``mirrored`` (``tf.distribute.MirroredStrategy`` over the local GPUs, or over the logical CPUs of
  ``logical_cpus``), ``multi_worker`` (``tf.distribute.MultiWorkerMirroredStrategy``, the cluster
  read from ``TF_CONFIG``) or ``auto`` (mirrored when there are several local GPUs, else one
  device). ``mirrored`` with a single device falls back to one device, saying so in one line.
- ``precision``: ``float32``, ``mixed_float16`` or ``mixed_bfloat16`` (Keras's mixed precision
  policies: float16/bfloat16 compute, float32 variables; the classifier's softmax stays float32
  and Keras wraps the optimizer in a loss-scale optimizer for float16), ``auto``: mixed_float16
  on a GPU, float32 on a CPU.
- ``jit_compile``: XLA on (``on``), off, or ``auto``: on with a GPU, off on a CPU (XLA made
  training ~4.5x slower on this project's 2-core CPU).
- ``scale_batch``: false (default): a budget's ``batch_size`` is the global batch, split over the
  replicas, and the learning rate is the budget's, so a training is the same computation on any
  number of devices. True: each replica takes ``batch_size`` (global batch = ``batch_size`` x
  replicas) and the peak learning rate is scaled by the replicas (the linear scaling rule of
  Goyal et al. 2017, "Accurate, Large Minibatch SGD"), reached after the schedule's warm-up.
- ``sync_batchnorm``: BatchNorm statistics over the global batch (Keras ``synchronized=True``)
  instead of each replica's share; with it, a mirrored training follows the one-device training
  step for step (tests/test_strategy.py).
- ``logical_cpus``: N >= 2 splits the CPU into N logical devices, so that ``mirrored`` runs (and
  is tested) on a machine without GPUs. Devices are fixed when TensorFlow starts: a process that
  has already used TensorFlow cannot change them (`configure` says so); the CLI and the notebooks
  configure before their first training.

Imports TensorFlow lazily (`configure`, `current`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
JIT = ("auto", "on", "off")
DEFAULTS = {"strategy": "auto", "precision": "auto", "jit_compile": "auto", "scale_batch": False,
            "sync_batchnorm": False, "logical_cpus": 0}
"""The ``train`` section's defaults (`accelnas.params.SCHEMA` holds the same)."""


class StrategyError(ValueError):
    """A strategy that cannot be made here (bad ``TF_CONFIG``, devices fixed already, ...)."""


@dataclass(frozen=True)
class Setup:
    """How this process trains.

    Attributes:
        strategy: the `tf.distribute.Strategy` models and optimizers are created under.
        name: the strategy actually used (``one_device``, ``mirrored``, ``multi_worker``).
        requested: the ``train.strategy`` asked for.
        precision: the Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``).
        jit_compile: XLA for ``model.compile``.
        replicas: replicas in sync (all workers).
        devices: the local devices the strategy trains on.
        workers: processes in the cluster (1 but for multi_worker).
        is_chief: this process writes results and checkpoints (always, but on multi_worker
            workers other than the chief).
        scale_batch / sync_batchnorm: as the params (module docstring).
        note: a line saying what fell back to what ('' when nothing did).
    """

    strategy: Any
    name: str
    requested: str
    precision: str
    jit_compile: bool
    replicas: int
    devices: tuple[str, ...]
    workers: int = 1
    is_chief: bool = True
    scale_batch: bool = False
    sync_batchnorm: bool = False
    note: str = ""
    config: dict = field(default_factory=dict)

    def global_batch(self, batch_size: int) -> int:
        """The global batch of a budget's ``batch_size`` (x replicas with ``scale_batch``)."""
        return int(batch_size) * (self.replicas if self.scale_batch else 1)

    def learning_rate(self, lr: float) -> float:
        """The peak learning rate for a budget's ``lr`` (x replicas with ``scale_batch``)."""
        return float(lr) * (self.replicas if self.scale_batch else 1)

    def scope(self):
        """``strategy.scope()``: create models and optimizers inside it."""
        return self.strategy.scope()

    def apply_precision(self) -> None:
        """Set Keras's global dtype policy (``keras.backend.clear_session`` resets it)."""
        import keras

        keras.mixed_precision.set_global_policy(self.precision)

    def summary(self) -> dict:
        """Plain data for result files and manifests."""
        return {"strategy": self.name, "requested": self.requested, "precision": self.precision,
                "jit_compile": self.jit_compile, "replicas": self.replicas,
                "devices": list(self.devices), "workers": self.workers,
                "scale_batch": self.scale_batch, "sync_batchnorm": self.sync_batchnorm}


_SETUP: Setup | None = None


def _section(train: Mapping | None) -> dict:
    out = dict(DEFAULTS)
    for k, v in (train or {}).items():
        if k not in DEFAULTS:
            raise StrategyError(f"train.{k}: unknown key; allowed: {', '.join(DEFAULTS)}")
        out[k] = v
    for key, allowed in (("strategy", STRATEGIES), ("precision", PRECISIONS), ("jit_compile", JIT)):
        if out[key] not in allowed:
            raise StrategyError(f"train.{key}: got {out[key]!r}; allowed: {', '.join(allowed)}")
    return out


def read_tf_config(text: str | None = None) -> dict:
    """The cluster of ``TF_CONFIG`` (``text`` None: the environment's), checked.

    Returns:
        ``{"workers": [addresses], "task_type": ..., "task_index": ...}`` (the chief, when the
        cluster names one, counts as worker 0).

    Raises:
        StrategyError: unset, not JSON, no ``cluster`` / ``task``, an address named twice, or a
            task index outside its list; the message says what to write.
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise StrategyError("train.strategy multi_worker needs TF_CONFIG, the cluster and this "
                            f"process's place in it, e.g. TF_CONFIG='{example}' (index 1 on host2)")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}); "
                            f"write it as {example}") from None
    cluster, task = (cfg.get("cluster"), cfg.get("task")) if isinstance(cfg, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise StrategyError(f"TF_CONFIG needs a 'cluster' and a 'task' object; got {text[:200]!r}; "
                            f"write it as {example}")
    addresses = []
    for role in ("chief", "worker"):
        hosts = cluster.get(role, [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise StrategyError(f"TF_CONFIG cluster.{role} must be a list of 'host:port' strings, "
                                f"got {hosts!r}")
        addresses += hosts
    dup = sorted({a for a in addresses if addresses.count(a) > 1})
    if dup:
        raise StrategyError(f"TF_CONFIG names {', '.join(dup)} more than once: every process of "
                            "the cluster needs its own host:port")
    ttype, index = task.get("type"), task.get("index")
    hosts = cluster.get(ttype) if isinstance(ttype, str) else None
    if not isinstance(hosts, list) or not isinstance(index, int) or not 0 <= index < len(hosts):
        raise StrategyError(f"TF_CONFIG task {task!r} is not in the cluster "
                            f"({ {k: len(v) for k, v in cluster.items() if isinstance(v, list)} }); "
                            "task.type must be one of its roles and task.index within its list")
    return {"workers": addresses, "task_type": ttype, "task_index": index}


def _split_cpus(n: int) -> None:
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise StrategyError(
                f"train.logical_cpus={n}: TensorFlow already started in this process with {have} "
                "CPU device(s), and devices are fixed at start. Run it from the CLI or a fresh "
                "kernel (the notebooks and `accelnas train` configure before any training), or "
                "set logical_cpus back to 0") from None


def configure(train: Mapping | None = None, *, log: Callable[[str], None] | None = print) -> Setup:
    """Make this process's `Setup` from a ``train`` params section (None: the defaults).

    Called again with the same section, returns the same `Setup`; with another, makes a new one
    (devices permitting: see the module docstring).

    Raises:
        StrategyError: an unknown value, a bad ``TF_CONFIG``, or logical CPUs asked for after
            TensorFlow started with others.
    """
    global _SETUP
    cfg = _section(train)
    if _SETUP is not None and _SETUP.config == cfg:
        return _SETUP
    import tensorflow as tf

    if cfg["logical_cpus"] and cfg["logical_cpus"] > 1:
        _split_cpus(int(cfg["logical_cpus"]))
    requested, note, workers, chief = cfg["strategy"], "", 1, True
    if requested == "multi_worker":
        cluster = read_tf_config()
        if _SETUP is not None and _SETUP.name == "multi_worker":
            strategy = _SETUP.strategy  # one collective runtime per process
        else:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = len(cluster["workers"])
        chief = (cluster["task_type"] == "chief"
                 or (cluster["task_type"] == "worker" and cluster["task_index"] == 0
                     and "chief" not in json.loads(os.environ["TF_CONFIG"])["cluster"]))
        name = "multi_worker"
        devices = tuple(d.name for d in tf.config.list_logical_devices("GPU")) or ("/cpu:0",)
    else:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        local = gpus if gpus else (cpus if cfg["logical_cpus"] and cfg["logical_cpus"] > 1 else [])
        want_mirrored = requested == "mirrored" or (requested == "auto" and len(gpus) > 1)
        if want_mirrored and len(local) > 1:
            strategy, name, devices = tf.distribute.MirroredStrategy(local), "mirrored", tuple(local)
        else:
            if requested == "mirrored":
                note = (f"train.strategy mirrored: one device here ({(gpus or cpus)[0]}), training "
                        "on it alone (set train.logical_cpus: 2 to mirror over CPU devices)")
            strategy, name = tf.distribute.get_strategy(), "one_device"
            devices = ((gpus or cpus)[0],)
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    precision = cfg["precision"] if cfg["precision"] != "auto" else ("mixed_float16" if on_gpu else "float32")
    jit = on_gpu if cfg["jit_compile"] == "auto" else cfg["jit_compile"] == "on"
    _SETUP = Setup(strategy=strategy, name=name, requested=requested, precision=precision,
                   jit_compile=bool(jit), replicas=int(strategy.num_replicas_in_sync),
                   devices=devices, workers=workers, is_chief=chief,
                   scale_batch=bool(cfg["scale_batch"]), sync_batchnorm=bool(cfg["sync_batchnorm"]),
                   note=note, config=cfg)
    if note and log is not None:
        log(note)
    return _SETUP


def current() -> Setup:
    """The `Setup` `configure` made, or the default one (one device) when none was made."""
    return _SETUP if _SETUP is not None else configure(None, log=None)
