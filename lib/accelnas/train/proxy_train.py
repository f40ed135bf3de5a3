"""Proxy training: train one architecture on the proxy task and report its validation accuracy.

`train_proxy` is what the search's ``run_trial`` and the report's baselines call: it adapts the
architecture with `accelnas.train.proxy.proxy_arch` (the one rule for searched and zoo models), builds
it with BatchNorm momentum 0.9 (a few hundred steps leave momentum-0.99/0.999 moving statistics
unconverged), trains it on the training split through the tf.data pipeline and evaluates it on the
validation split. Before evaluating, the BatchNorm moving statistics are re-estimated on
`BN_RECAL_IMAGES` training images (`recalibrate_batchnorm`, "precise BN"): after a few dozen
steps even momentum-0.9 averages can lag the weights enough to make a model predict one class.
The test split is evaluated only when asked (``test=True``, final reports).

Divergence (a NaN, infinite or exploded (> `MAX_LOSS`) running training loss, checked after every
step, or a non-finite validation loss) raises `TrainingDiverged`; the caller records the trial as
failed with that message.

Memory: each call clears the Keras session before and after training and removes the gradient
functions ``tf.custom_gradient`` left in TF's global registry (see `_release_custom_gradients`),
so the memory of a process that trains candidate after candidate stays flat.

Determinism: `train_proxy` seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``);
the pipeline's shuffle and augmentation are seeded too. On this CPU build the same seed gives the
same weights and accuracy run after run; ``deterministic=True`` additionally turns on
``tf.config.experimental.enable_op_determinism()`` (process-wide, for platforms with
non-deterministic kernels).
"""
from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from accelnas.space.arch import ArchSpec
from accelnas.train.proxy import MIN_FEATURE, proxy_arch

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LEARNING_RATE = {"adam": 2e-3, "sgd": 0.05}
"""Peak learning rate per optimizer (cosine decay to 0 after a 5 % linear warm-up). Chosen on
EfficientNet-EdgeTPU-S, width 0.5, 5000 CIFAR-10 images x 3 epochs (117 steps of 128): Adam 1e-3
/ 2e-3 / 5e-3 gave 39.2 / 39.8 / 32.4 % validation accuracy, SGD-Nesterov 0.05 / 0.2 gave
41.6 / 19.1 %; Adam is the default (less sensitive to the architecture's depth and width)."""
EVAL_BATCH_SIZE = 256


def eval_batch_size(resolution: int, train_batch: int) -> int:
    """Images per evaluation (and BatchNorm recalibration) batch: `EVAL_BATCH_SIZE` up to 64 px,
    fewer above (as many pixels as 256 images of 64 px, but not fewer than one replica's training
    batch, which fits): at 224 px a 256-image batch of EfficientNet-EdgeTPU-S's activations took
    RSS to 8.5 GiB on this machine (benchmarks/stream_bench.py)."""
    by_pixels = EVAL_BATCH_SIZE * 64 * 64 // max(1, int(resolution)) ** 2
    return max(1, min(EVAL_BATCH_SIZE, max(int(train_batch), by_pixels)))

BN_RECAL_IMAGES = 512
"""Training images `recalibrate_batchnorm` averages BatchNorm statistics over (~1.5 s for the
EfficientNet-EdgeTPU-S proxy; 256 / 512 / 1024 / 3000 images gave 32.1 / 32.4 / 32.7 / 32.4 %
in the example of `recalibrate_batchnorm`)."""
MAX_LOSS = 1e3
"""Running training loss (mean cross-entropy) above which a training counts as diverged: chance
level is ln(num_classes) (2.3 for 10 classes); a run whose mean loss passes 1000 has exploded
logits (Adam at a huge learning rate stays finite at ~1e13 because BatchNorm bounds the
activations) and does not recover within a proxy budget."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN, infinite or larger than `MAX_LOSS`.

    Attributes:
        epoch: 1-based epoch in which it happened.
        step: 1-based global training step (the last step when the validation loss was not
            finite).
        loss: the offending loss value.
    """

    def __init__(self, message: str, *, epoch: int, step: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.loss = loss

    def __reduce__(self):  # picklable (keyword-only arguments)
        return (_diverged, (str(self), self.epoch, self.step, self.loss))


def _diverged(message: str, epoch: int, step: int, loss: float) -> TrainingDiverged:
    return TrainingDiverged(message, epoch=epoch, step=step, loss=loss)


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
        resumed_from: epochs a checkpoint held when the training started (0: from scratch).
        setup: devices, strategy, replicas and precision it trained under
            (`accelnas.train.strategy.Setup.summary`).
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
    resumed_from: int = 0
    setup: dict | None = None

    def to_dict(self) -> dict:
        """Plain data (history as a list) for tables and JSON."""
        d = asdict(self)
        d["history"] = [dict(h) for h in self.history]
        return d


def training_failure(e: BaseException) -> str:
    """One line saying why a training failed: ``diverged: ...``, ``out of memory: ...`` or
    ``failed to build or train: <exception type>: ...`` (first line, at most 300 characters)."""
    if isinstance(e, TrainingDiverged):
        return f"diverged: {e}"
    name = type(e).__name__
    if isinstance(e, MemoryError) or name == "ResourceExhaustedError" or "OOM" in str(e)[:200]:
        return f"out of memory: {str(e).splitlines()[0][:300] if str(e) else name}"
    first = str(e).splitlines()[0][:300] if str(e) else ""
    return f"failed to build or train: {name}: {first}"


def _build_for_multi_worker(model, data, batch_size: int, resolution: int) -> None:
    """Build a model's metrics and loss before ``fit`` under ``MultiWorkerMirroredStrategy``.

    Keras 3.15's ``fit`` builds them from its first distributed batch, which it averages across the
    workers with ``strategy.reduce`` first; with several workers that reduce fails ("Attempt to
    convert a value (PerReplica...) to a Tensor"). Here they are built from one local batch under
    the strategy's scope, and ``fit``'s own build, which would do the same, is skipped.
    """
    xb, yb = next(iter(data.pipeline("val" if data.size("val") else "train", batch_size=batch_size,
                                     resolution=resolution, training=False, cache=False)))
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(xb, yb))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    # Its per-step logs fail too: it averages them over the workers with
    # strategy.reduce("MEAN", v, axis=0), which needs an axis 0; the logs leave each step as
    # one-element vectors, and come out of that reduce as the scalar mean over the workers.
    import tensorflow as tf

    step = model.train_step
    model.train_step = lambda batch: {k: tf.reshape(v, [1]) for k, v in step(batch).items()}


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _divergence_callback(steps_per_epoch: int, max_loss: float):
    import keras

    class _CheckFinite(keras.callbacks.Callback):
        """Raise `TrainingDiverged` on the first non-finite or exploded training loss."""

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
            if loss is not None and not (_finite(loss) and float(loss) <= max_loss):
                step = (self.epoch - 1) * steps_per_epoch + batch + 1
                raise TrainingDiverged(
                    f"training diverged: loss {float(loss)} (limit {max_loss:g}) at epoch "
                    f"{self.epoch}, step {step} "
                    f"(batch {batch + 1} of the epoch); lower the learning rate",
                    epoch=self.epoch, step=step, loss=float(loss))

    return _CheckFinite()


def _custom_gradient_keys() -> set:
    """Names in TF's global gradient registry that ``tf.custom_gradient`` registered."""
    try:
        from tensorflow.python.framework import ops as tf_ops

        return {k for k in tf_ops._gradient_registry._registry if k.startswith("CustomGradient-")}
    except Exception:  # private API moved: nothing to release
        return set()


def _release_custom_gradients(before: set) -> int:
    """Drop the custom gradients registered since ``before``; returns how many.

    Keras's TF optimizer sums gradients with ``ReplicaContext.all_reduce``, which wraps its op in
    ``tf.custom_gradient``; in graph mode that registers a gradient function under a fresh
    ``CustomGradient-<n>`` name in a process-global registry and never removes it. The function's
    closure holds the whole traced training step (every op of the model), so without this each
    training leaks its graph: ~25 MB for a tiny net, ~100-170 MB for a proxy EfficientNet
    (measured with TF 2.21 / Keras 3.15). Called once the trained model is discarded: nothing
    differentiates through those graphs again.
    """
    try:
        from tensorflow.python.framework import ops as tf_ops

        registry = tf_ops._gradient_registry._registry
        new = [k for k in registry if k.startswith("CustomGradient-") and k not in before]
        for k in new:
            del registry[k]
        return len(new)
    except Exception:
        return 0


def compile_model(model, *, steps: int, optimizer: str = "adam", learning_rate: float | None = None,
                  warmup_steps: int | None = None, weight_decay: float = 0.0,
                  jit_compile: bool = False) -> None:
    """Compile ``model`` for proxy training: sparse cross-entropy on its softmax output,
    accuracy, and ``optimizer`` with a linear warm-up then cosine decay to 0 over ``steps``;
    the optimizer's variables are created here (see the comment in the code).

    Args:
        steps: total optimizer steps (the schedule's length).
        optimizer: ``adam`` (AdamW when ``weight_decay``) or ``sgd`` (Nesterov momentum 0.9).
        learning_rate: peak rate; None: `DEFAULT_LEARNING_RATE` of the optimizer.
        warmup_steps: linear warm-up length; None: 5 % of ``steps`` (at least 1).
        weight_decay: decoupled weight decay (0: none).
        jit_compile: XLA (off by default: ~4.5x slower on this project's CPU; see
            `accelnas.train.strategy`).
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
                  jit_compile=bool(jit_compile))
    # Create the optimizer's slot variables now, eagerly: left to the first training step, they
    # are created inside the traced function, which TF then traces a second time, with a lazy-
    # initialisation cond per slot: 27.6k graph ops instead of 11.4k and ~2x the first-step time
    # (EfficientNet-EdgeTPU-S proxy: 16.6 s -> 8.5 s on a busy 2-core machine).
    model.optimizer.build(model.trainable_variables)


def recalibrate_batchnorm(model, data, *, resolution: int | None = None,
                          images: int = BN_RECAL_IMAGES, batch_size: int = EVAL_BATCH_SIZE,
                          seed: int = 0) -> int:
    """Re-estimate every BatchNorm layer's moving statistics on training images ("precise BN").

    Runs ``images`` training images (a seeded random sample, without augmentation, normalized as
    for evaluation) through ``model`` in training mode, in chunks of ``batch_size``, with each
    BatchNorm layer's momentum set to ``(k - 1) / k`` for the k-th chunk, so its moving mean and
    variance become the average of the chunks' batch statistics; the weights do not change and
    the momenta are restored. Why: after the few dozen steps of a short proxy, the moving
    averages lag behind weights that are still moving; EfficientNet-EdgeTPU-S trained 48 steps
    (3000 CIFAR-10 images x 2 epochs) predicted one class in inference mode (9.9 % validation
    accuracy; 31.5 % with batch statistics) and 32.4 % after this recalibration (512 images).

    Returns:
        The number of images used (0 when the model has no BatchNorm layer).
    """
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    n = min(int(images), data.size("train"))
    if not bns or n == 0:
        return 0
    ds = data.pipeline("train", batch_size=batch_size, resolution=resolution, training=False,
                       seed=seed, augment=False, cache=False, images=n)
    momenta = [layer.momentum for layer in bns]
    try:
        for k, (xb, _) in enumerate(ds, start=1):
            for layer in bns:
                layer.momentum = (k - 1) / k
            model(xb, training=True)
    finally:
        for layer, m in zip(bns, momenta):
            layer.momentum = m
    return n


def evaluate(model, data, split: str = "val", *, resolution: int | None = None,
             batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """``(loss, top-1 accuracy)`` of a compiled ``model`` on a split of ``data``
    (`accelnas.train.data.Dataset`), without augmentation.

    Raises:
        ValueError: the split is empty.
    """
    if data.size(split) == 0:
        raise ValueError(f"the {split!r} split of {data.source} is empty")
    ds = data.pipeline(split, batch_size=batch_size, resolution=resolution, training=False)
    if model.distribute_strategy.num_replicas_in_sync == 1:
        out = model.evaluate(ds, verbose=0, return_dict=True)
        return float(out["loss"]), float(out["accuracy"])
    # Under a multi-replica strategy Keras's evaluate fails on a last batch that does not split
    # evenly over the replicas (TF 2.21 / Keras 3: AddN of unequal shapes); evaluation needs no
    # gradient all-reduce, so every process runs the whole split on its first device.
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in ds:
        probs = tf.cast(forward(xb), tf.float32)
        y = yb.numpy()
        p = np.clip(probs.numpy()[np.arange(len(y)), y], 1e-7, 1.0)
        loss_sum += float(-np.log(p).sum())
        correct += int((probs.numpy().argmax(1) == y).sum())
        n += len(y)
    return loss_sum / n, correct / n


def train_proxy(arch: ArchSpec, data, *, epochs: int, batch_size: int, resolution: int,
                seed: int = 0, width_mult: float = 1.0, min_feature: int = MIN_FEATURE,
                optimizer: str = "adam", learning_rate: float | None = None,
                weight_decay: float = 0.0, augment: bool = True, test: bool = False,
                recalibrate_bn: bool = True, deterministic: bool = False,
                max_loss: float = MAX_LOSS, verbose: int = 0,
                callbacks: Sequence = (), save_path: str | os.PathLike | None = None,
                checkpoint_dir: str | os.PathLike | None = None, setup=None) -> TrainResult:
    """Train ``arch`` on the proxy task and evaluate it on the validation split.

    Args:
        arch: the architecture as designed (ImageNet-style); adapted by `proxy_arch` with
            ``resolution``, ``width_mult``, ``min_feature`` and ``data.num_classes``.
        data: a dataset of `accelnas.train` (in memory: `accelnas.train.data.load_arrays`;
            streamed: `accelnas.train.stream`): ``size``, ``pipeline``, ``num_classes``, ``source``.
        epochs: passes over the training split.
        batch_size: training batch size (global, or per replica with ``train.scale_batch``).
        resolution: proxy input pixels (the pipeline resizes when the images differ).
        seed: seeds Keras (Python, NumPy, TF), the shuffle and the augmentation.
        width_mult: proxy width multiplier.
        min_feature: smallest final feature map of the proxy, pixels (see `accelnas.train.proxy`).
        optimizer / learning_rate / weight_decay: see `compile_model`.
        augment: flip + crop augmentation of the training pipeline.
        test: also evaluate the test split (final reports only; never for search decisions).
        recalibrate_bn: re-estimate the BatchNorm statistics on training images before
            evaluating (`recalibrate_batchnorm`); on by default for every model alike.
        deterministic: enable TF op determinism (process-wide; see the module docstring).
        max_loss: a running training loss above this counts as divergence (`MAX_LOSS`).
        verbose: ``model.fit`` verbosity.
        callbacks: extra Keras callbacks.
        save_path: write the trained model there (a ``.keras`` file, after BatchNorm
            recalibration), e.g. for int8 export with its trained weights.
        checkpoint_dir: save the training state there after every epoch
            (`accelnas.train.checkpoint`) and, when it holds one of the same training, resume
            from it (``TrainResult.resumed_from``).
        setup: the `accelnas.train.strategy.Setup` to train under (default: the process's,
            `accelnas.train.strategy.current`).

    Returns:
        A `TrainResult`.

    Raises:
        TrainingDiverged: the running training loss was not finite or above ``max_loss``, or
            the validation loss was not finite.
        ValueError: bad arguments, an empty split, or a checkpoint of another training.
    """
    import keras
    import tensorflow as tf

    from accelnas.space.builder import build
    from accelnas.space.graph import from_arch
    from accelnas.train import checkpoint as ckpt
    from accelnas.train.strategy import current

    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    n_train = data.size("train")
    if n_train == 0:
        raise ValueError(f"the training split of {data.source} is empty")
    setup = setup or current()
    t0 = time.perf_counter()
    p = proxy_arch(arch, resolution=resolution, width_mult=width_mult,
                   num_classes=data.num_classes, min_feature=min_feature)
    keras.backend.clear_session()  # drop the previous model's graph state
    gc.collect()
    grads_before = _custom_gradient_keys()
    model = train_ds = hist = check = None
    global_batch = setup.global_batch(batch_size)
    steps_per_epoch = math.ceil(n_train / global_batch)
    steps = steps_per_epoch * epochs
    identity = ckpt.identity(p, epochs=epochs, batch_size=global_batch, seed=seed,
                             optimizer=optimizer, learning_rate=learning_rate, data=data.source)
    resumed_from = 0
    try:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        setup.apply_precision()
        keras.utils.set_random_seed(int(seed))
        lr = setup.learning_rate(DEFAULT_LEARNING_RATE.get(optimizer, 0.0)
                                 if learning_rate is None else learning_rate)
        with setup.scope():
            model = build(p, bn_momentum=0.9, sync_batchnorm=setup.sync_batchnorm)
            params = int(model.count_params())
            compile_model(model, steps=steps, optimizer=optimizer, learning_rate=lr or None,
                          weight_decay=weight_decay, jit_compile=setup.jit_compile)
            if checkpoint_dir is not None:
                resumed_from = ckpt.restore(model, checkpoint_dir, identity)
        extra = []
        if checkpoint_dir is not None:
            extra.append(ckpt.epoch_checkpoint(checkpoint_dir, identity, write_files=setup.is_chief))
        check = _divergence_callback(steps_per_epoch, max_loss)
        history = []
        fit_s = 0.0
        if resumed_from < epochs:
            train_ds = data.pipeline("train", batch_size=global_batch, resolution=resolution,
                                     seed=int(seed), augment=augment, epochs=epochs,
                                     first_epoch=resumed_from)
            if setup.name == "multi_worker":
                _build_for_multi_worker(model, data, global_batch, resolution)
            t_fit = time.perf_counter()
            with setup.scope():
                hist = model.fit(train_ds, epochs=epochs, initial_epoch=resumed_from, verbose=verbose,
                                 steps_per_epoch=steps_per_epoch, shuffle=False,
                                 callbacks=[check, *extra, *callbacks])
            fit_s = time.perf_counter() - t_fit
            # the schedule (Keras 3's optimizer.learning_rate is its current value: the last one)
            inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # loss scaling
            lr_fn = getattr(inner, "_learning_rate", None)
            lr_fn = lr_fn if callable(lr_fn) else model.optimizer.learning_rate
            for i, e in enumerate(range(resumed_from, resumed_from + len(hist.history.get("loss", [])))):
                lr_e = lr_fn((e + 1) * steps_per_epoch - 1) if callable(lr_fn) else lr_fn
                history.append({"epoch": e + 1, "loss": float(hist.history["loss"][i]),
                                "accuracy": float(hist.history["accuracy"][i]),
                                "learning_rate": float(keras.ops.convert_to_numpy(lr_e)),
                                "seconds": check.seconds[i] if i < len(check.seconds) else None})
        eval_bs = eval_batch_size(resolution, global_batch // setup.replicas)
        if recalibrate_bn:
            recalibrate_batchnorm(model, data, resolution=resolution, seed=int(seed), batch_size=eval_bs)
        val_loss, val_acc = evaluate(model, data, "val", resolution=resolution, batch_size=eval_bs)
        if not _finite(val_loss):
            raise TrainingDiverged(f"training diverged: validation loss {val_loss} after "
                                   f"{epochs} epochs; lower the learning rate",
                                   epoch=epochs, step=steps, loss=val_loss)
        test_loss = test_acc = None
        if test:
            test_loss, test_acc = evaluate(model, data, "test", resolution=resolution, batch_size=eval_bs)
        if save_path is not None and setup.is_chief:
            Path(save_path).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(save_path).with_name(Path(save_path).stem + ".partial.keras")
            model.save(tmp)
            os.replace(tmp, save_path)  # a killed save leaves no half-written model behind
        elif save_path is not None:  # another worker: saving is collective, its file is not kept
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                model.save(Path(tmp) / "model.keras")
    finally:  # also on TrainingDiverged / MemoryError / KeyboardInterrupt: free the model
        model = train_ds = hist = check = None
        keras.backend.clear_session()
        _release_custom_gradients(grads_before)
        gc.collect()
    last = history[-1] if history else {"accuracy": float("nan"), "loss": float("nan")}
    trained = epochs - resumed_from
    return TrainResult(
        accuracy=val_acc, val_loss=val_loss,
        train_accuracy=last["accuracy"], train_loss=last["loss"],
        epochs=epochs, steps=steps, wall_s=time.perf_counter() - t0, fit_s=fit_s,
        train_images_per_s=n_train * trained / fit_s if fit_s > 0 else float("nan"),
        params=params, macs=int(from_arch(p).macs), history=tuple(history), arch=p.encode(),
        seed=int(seed), test_accuracy=test_acc, test_loss=test_loss,
        resumed_from=resumed_from, setup=setup.summary())
