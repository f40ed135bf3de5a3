"""Proxy training: train one architecture on the proxy task and report its validation accuracy.

`train_proxy` is what the search's ``run_trial`` and the report's baselines call: it adapts the
architecture with `accelnas.proxy.proxy_arch` (the one rule for searched and zoo models), builds
it with BatchNorm momentum 0.9 (a few hundred steps leave momentum-0.99/0.999 moving statistics
unconverged), trains it on the training split through the tf.data pipeline and evaluates it on the
validation split. The test split is evaluated only when asked (``test=True``, final reports).

Divergence (a NaN or infinite training loss, checked after every step, or a non-finite validation
loss) raises `TrainingDiverged`; the caller records the trial as failed with that message.

Determinism: `train_proxy` seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``);
the pipeline's shuffle and augmentation are seeded too. On this CPU build the same seed gives the
same weights and accuracy run after run; ``deterministic=True`` additionally turns on
``tf.config.experimental.enable_op_determinism()`` (process-wide, for platforms with
non-deterministic kernels).
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from .arch import ArchSpec
from .proxy import MIN_FEATURE, proxy_arch

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LEARNING_RATE = {"adam": 2e-3, "sgd": 0.1}
"""Peak learning rate per optimizer (cosine decay to 0 after a linear warm-up)."""
EVAL_BATCH_SIZE = 256


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite.

    Attributes:
        epoch: 1-based epoch in which it happened.
        step: 1-based global training step (0 when the validation loss was not finite).
        loss: the offending loss value.
    """

    def __init__(self, message: str, *, epoch: int, step: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.loss = loss


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one `train_proxy` run.

    Attributes:
        accuracy: validation top-1 accuracy in [0, 1] (the search objective).
        val_loss: validation cross-entropy.
        train_accuracy / train_loss: running means over the last training epoch (augmented data,
            training-mode BatchNorm).
        epochs: epochs trained.
        steps: optimizer steps taken.
        wall_s: seconds of the whole call (build, training, evaluation).
        fit_s: seconds inside ``model.fit`` (includes graph tracing in the first epoch).
        train_images_per_s: training images seen / ``fit_s``.
        params: parameter count of the trained proxy model.
        macs: multiply-accumulates per image of the proxy model (from its op graph).
        history: one dict per epoch: ``epoch``, ``loss``, ``accuracy``, ``learning_rate``,
            ``seconds``.
        arch: the proxy architecture that was trained (`ArchSpec.encode` text).
        seed: the training seed.
        test_accuracy / test_loss: test split, only with ``test=True`` (else None).
    """

    accuracy: float
    val_loss: float
    train_accuracy: float
    train_loss: float
    epochs: int
    steps: int
    wall_s: float
    fit_s: float
    train_images_per_s: float
    params: int
    macs: int
    history: tuple[dict, ...]
    arch: str
    seed: int
    test_accuracy: float | None = None
    test_loss: float | None = None

    def to_dict(self) -> dict:
        """Plain data (history as a list) for tables and JSON."""
        d = asdict(self)
        d["history"] = [dict(h) for h in self.history]
        return d


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _divergence_callback(steps_per_epoch: int):
    import keras

    class _CheckFinite(keras.callbacks.Callback):
        """Raise `TrainingDiverged` on the first non-finite training loss."""

        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not _finite(loss):
                step = (self.epoch - 1) * steps_per_epoch + batch + 1
                raise TrainingDiverged(
                    f"training diverged: loss {float(loss)} at epoch {self.epoch}, step {step} "
                    f"(batch {batch + 1} of the epoch); lower the learning rate",
                    epoch=self.epoch, step=step, loss=float(loss))

    return _CheckFinite()


def compile_model(model, *, steps: int, optimizer: str = "adam", learning_rate: float | None = None,
                  warmup_steps: int | None = None, weight_decay: float = 0.0) -> None:
    """Compile ``model`` for proxy training: sparse cross-entropy on its softmax output,
    accuracy, and ``optimizer`` with a linear warm-up then cosine decay to 0 over ``steps``.

    Args:
        steps: total optimizer steps (the schedule's length).
        optimizer: ``adam`` (AdamW when ``weight_decay``) or ``sgd`` (Nesterov momentum 0.9).
        learning_rate: peak rate; None: `DEFAULT_LEARNING_RATE` of the optimizer.
        warmup_steps: linear warm-up length; None: 5 % of ``steps`` (at least 1).
        weight_decay: decoupled weight decay (0: none).
    """
    import keras

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LEARNING_RATE[optimizer] if learning_rate is None else float(learning_rate)
    if not lr > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    steps = max(1, int(steps))
    warmup = max(1, int(round(0.05 * steps))) if warmup_steps is None else int(warmup_steps)
    warmup = min(warmup, steps - 1) if steps > 1 else 0
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else lr, decay_steps=max(1, steps - warmup), alpha=0.0,
        warmup_target=lr if warmup else None, warmup_steps=warmup)
    if optimizer == "adam":
        opt = (keras.optimizers.AdamW(schedule, weight_decay=weight_decay) if weight_decay
               else keras.optimizers.Adam(schedule))
    else:
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                   weight_decay=weight_decay or None)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=False)  # XLA is ~4.5x slower on this CPU (TOOLCHAIN.md)


def evaluate(model, data, split: str = "val", *, resolution: int | None = None,
             batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """``(loss, top-1 accuracy)`` of a compiled ``model`` on a split of ``data``
    (`accelnas.data.Dataset`), without augmentation.

    Raises:
        ValueError: the split is empty.
    """
    x, _ = data.split(split)
    if len(x) == 0:
        raise ValueError(f"the {split!r} split of {data.source} is empty")
    ds = data.pipeline(split, batch_size=batch_size, resolution=resolution, training=False)
    out = model.evaluate(ds, verbose=0, return_dict=True)
    return float(out["loss"]), float(out["accuracy"])


def train_proxy(arch: ArchSpec, data, *, epochs: int, batch_size: int, resolution: int,
                seed: int = 0, width_mult: float = 1.0, min_feature: int = MIN_FEATURE,
                optimizer: str = "adam", learning_rate: float | None = None,
                weight_decay: float = 0.0, augment: bool = True, test: bool = False,
                deterministic: bool = False, verbose: int = 0,
                callbacks: Sequence = ()) -> TrainResult:
    """Train ``arch`` on the proxy task and evaluate it on the validation split.

    Args:
        arch: the architecture as designed (ImageNet-style); adapted by `proxy_arch` with
            ``resolution``, ``width_mult``, ``min_feature`` and ``data.num_classes``.
        data: an `accelnas.data.Dataset` (`accelnas.data.load_arrays`).
        epochs: passes over the training split.
        batch_size: training batch size.
        resolution: proxy input pixels (the pipeline resizes when the images differ).
        seed: seeds Keras (Python, NumPy, TF), the shuffle and the augmentation.
        width_mult: proxy width multiplier.
        min_feature: smallest final feature map of the proxy, pixels (see `accelnas.proxy`).
        optimizer / learning_rate / weight_decay: see `compile_model`.
        augment: flip + crop augmentation of the training pipeline.
        test: also evaluate the test split (final reports only; never for search decisions).
        deterministic: enable TF op determinism (process-wide; see the module docstring).
        verbose: ``model.fit`` verbosity.
        callbacks: extra Keras callbacks.

    Returns:
        A `TrainResult`.

    Raises:
        TrainingDiverged: the training or validation loss was not finite.
        ValueError: bad arguments or an empty split.
    """
    import keras
    import tensorflow as tf

    from .builder import build
    from .graph import from_arch

    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    n_train = len(data.y_train)
    if n_train == 0:
        raise ValueError(f"the training split of {data.source} is empty")
    t0 = time.perf_counter()
    p = proxy_arch(arch, resolution=resolution, width_mult=width_mult,
                   num_classes=data.num_classes, min_feature=min_feature)
    keras.backend.clear_session()  # drop the previous model's graph state (memory stays flat)
    gc.collect()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(int(seed))
    model = build(p, bn_momentum=0.9)
    steps_per_epoch = math.ceil(n_train / batch_size)
    steps = steps_per_epoch * epochs
    compile_model(model, steps=steps, optimizer=optimizer, learning_rate=learning_rate,
                  weight_decay=weight_decay)
    train_ds = data.pipeline("train", batch_size=batch_size, resolution=resolution, seed=int(seed),
                             augment=augment)
    check = _divergence_callback(steps_per_epoch)
    t_fit = time.perf_counter()
    try:
        hist = model.fit(train_ds, epochs=epochs, verbose=verbose, shuffle=False, callbacks=[check, *callbacks])
    finally:
        fit_s = time.perf_counter() - t_fit
    history = []
    lr_fn = model.optimizer.learning_rate
    for e in range(len(hist.history.get("loss", []))):
        end_step = (e + 1) * steps_per_epoch
        lr = lr_fn(end_step - 1) if callable(lr_fn) else lr_fn
        history.append({"epoch": e + 1, "loss": float(hist.history["loss"][e]),
                        "accuracy": float(hist.history["accuracy"][e]),
                        "learning_rate": float(keras.ops.convert_to_numpy(lr)),
                        "seconds": float(check.seconds[e]) if e < len(check.seconds) else None})
    val_loss, val_acc = evaluate(model, data, "val", resolution=resolution)
    if not _finite(val_loss):
        raise TrainingDiverged(f"training diverged: validation loss {val_loss} after {epochs} "
                               "epochs; lower the learning rate", epoch=epochs, step=0,
                               loss=val_loss)
    test_loss = test_acc = None
    if test:
        test_loss, test_acc = evaluate(model, data, "test", resolution=resolution)
    params = int(model.count_params())
    del model
    keras.backend.clear_session()
    gc.collect()
    return TrainResult(
        accuracy=val_acc, val_loss=val_loss,
        train_accuracy=history[-1]["accuracy"], train_loss=history[-1]["loss"],
        epochs=epochs, steps=steps, wall_s=time.perf_counter() - t0, fit_s=fit_s,
        train_images_per_s=n_train * epochs / fit_s if fit_s > 0 else float("nan"),
        params=params, macs=int(from_arch(p).macs), history=tuple(history), arch=p.encode(),
        seed=int(seed), test_accuracy=test_acc, test_loss=test_loss)
