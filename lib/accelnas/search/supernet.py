"""A weight-sharing supernet over a search space: stage-1 scores in seconds, not a training each.

One network holds every candidate of a `SearchSpace` at the proxy task's size (`accelnas.train.proxy`:
the same stride rule, width multiplier and classes as a stand-alone proxy training). Weights are
shared where shapes nest, as in Once-for-All and TuNAS:

* **kernels** by the centre slice: a k x k kernel is the centre k x k taps of the largest one
  (with "same" padding the centre sits on the same input pixel for every k);
* **widths and expansions** by leading channels: a stage's c output channels are the first c of its
  largest width, an expanded layer's m channels the first m;
* **depth** by the first repeats: a stage with r repeats runs its first r blocks; the others pass
  their input through;
* **block types** as their own branches per block (``tf.switch_case``: only the chosen type runs);
  activations likewise per stage.

Each layer runs at the candidate's own shapes, its weights sliced out of the shared ones with the
path's tensors inside one traced graph, so a candidate costs what its own network costs: 0.43 s
to calibrate on 256 and score on 500 images at the default proxy, against 0.89 s when every layer
ran at the largest shapes with the unused channels and taps masked (median of 12 random
candidates after the first, which traces the graphs: 36 s in `benchmarks/proxy_bench.py`; same
accuracies). The subnet of a
candidate is exactly ``build(proxy_arch(candidate))`` with inherited weights (`subnet_weights`
exports them under the Keras layer names; tests/test_supernet.py checks the two agree). Three training rules:

* ``"distill"`` (`Supernet.distill`, blockwise distillation as in DNA, Li et al. 2020, "Block-wisely
  Supervised Neural Architecture Search with Knowledge Distillation"): a teacher path (the zoo
  skeleton's nearest member of the space) trains alone, is frozen, and then every stage of one
  random path per step learns to reproduce the teacher's output of that stage from the teacher's
  input to it. A stage's block types, kernels, widths and depths all learn the same features,
  so any stages chain into a working subnet (with the teacher's stem and head);
* ``"uniform"``: one random path per step, end to end;
* ``"sandwich"``: the largest, the smallest and two random paths per step, gradients summed (Yu &
  Huang 2019).

Measured on CIFAR-10 at the default proxy (3,000 images; `benchmarks/proxy_bench.py`, 13
candidates): end to end, paths that mix block types give each stage's output channels unrelated
meanings and the supernet stays near chance (uniform, 35 epochs in 862 s: subnets 0.14-0.20,
Kendall tau against stage 2 +0.05); distilled, its subnets score 0.18-0.37 and rank at +0.31
(6 + 20 epochs, 972 s on a busier machine, offsets counted in the stage loss), +0.36 with them
free (`stage_loss`), and 0.25-0.40 / +0.39 after 6 + 40 epochs (1,289 s); against stage 2 with
4 seeds (a less noisy reference) +0.44, where the stand-alone proxy ranks at +0.64; the default
6 + 20 epochs rank a second, held-out set of 12 at +0.40 and all 25 at +0.37 (stand-alone: +0.79,
+0.68; `--candidate-seed 0,1`). BatchNorm uses batch
statistics while training; a candidate is scored after recalibrating every BatchNorm on training
images with its own path (the statistics of a shared layer differ per subnet), then evaluated on
the validation split.

Covered: spaces of ``conv``, ``ibn`` and ``fused`` blocks (expansion > 1) without squeeze-excite
(the Edge TPU excludes it). Other spaces raise ValueError naming what is not covered.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from accelnas.train.proxy import MIN_FEATURE, proxy_arch
from accelnas.space.arch import ArchSpec, make_divisible
from accelnas.space.search_space import SearchSpace

TYPES = ("conv", "ibn", "fused")
ACTS = ("relu", "relu6", "hswish", "swish")
EPS = 1e-3  # BatchNorm epsilon of accelnas.space.builder
PATH_RULES = ("uniform", "sandwich")
RULES = (*PATH_RULES, "distill")


@dataclass(frozen=True)
class StageDims:
    """Largest shapes of one stage in the supernet."""

    stride: int
    cin: int        # largest input channels (previous stage's largest output, or the stem)
    cout: int       # largest output channels
    repeats: int    # largest repeats
    kernel: int     # largest kernel
    mid: int        # largest expanded channels (over both first and later repeats)


def _extreme(space: SearchSpace, pick, values: Mapping[str, Any] | None = None) -> ArchSpec:
    """``values`` (default: each decision's first choice) with every numeric decision set to
    ``pick`` (max or min) of its choices; block types and activations stay as given."""
    choices = space.choices()
    values = dict(values or {k: v[0] for k, v in choices.items()})
    for key, opts in choices.items():
        if not key.endswith(("_block", "_activation")):
            values[key] = pick(opts)
    return space.from_values(values)


class Supernet:
    """A weight-sharing supernet (see the module docstring).

    Args:
        space: the search space (after the accelerators' exclusions).
        resolution, width_mult, num_classes, min_feature: the proxy task (`proxy_arch`).
        seed: weight initialisation.
        setup: the `accelnas.train.strategy.Setup` it trains under (default: the process's). With
            several replicas each training batch is split over them and the accumulated gradients
            are summed across them (`_run`); BatchNorm uses each replica's share of the batch.
            Calibration and scoring run on the first device.
    """

    def __init__(self, space: SearchSpace, *, resolution: int, width_mult: float, num_classes: int,
                 min_feature: int = MIN_FEATURE, seed: int = 0, setup=None) -> None:
        bad = [t for t in space.block_types if t not in TYPES]
        if bad:
            raise ValueError(f"the supernet covers block types {TYPES}, not {bad}; use "
                             "search.evaluator: standalone for this space")
        if any(r > 0 for r in space.se_ratios):
            raise ValueError("the supernet covers spaces without squeeze-excite (se_ratios: [0.0]); "
                             "use search.evaluator: standalone for this space")
        if any(float(e) == 1.0 for e in space.expand_ratios):
            raise ValueError("the supernet needs expand_ratios > 1 (an ibn/fused block with "
                             "expansion 1 has another structure); use search.evaluator: standalone")
        self.space = space
        self.proxy = dict(resolution=int(resolution), width_mult=float(width_mult),
                          num_classes=int(num_classes), min_feature=int(min_feature))
        self.types = tuple(t for t in TYPES if t in space.block_types)
        self.acts = tuple(a for a in ACTS if a in set(space.activations) | {space.activation})
        big = self._proxy(_extreme(space, max))
        self.stem_channels = big.stem.out_channels
        self.stem_stride = big.stem.stride
        self.head_channels = big.head_channels
        self.stage_strides = tuple(b.stride for b in big.blocks)
        dims, cin = [], self.stem_channels
        e_max = max(space.expand_ratios)
        for b in big.blocks:
            mid = max(make_divisible(cin * e_max, 8), make_divisible(b.out_channels * e_max, 8))
            dims.append(StageDims(b.stride, cin, b.out_channels, b.repeats, b.kernel, mid))
            cin = b.out_channels
        self.dims = tuple(dims)
        self.seed = int(seed)
        from accelnas.train.strategy import current

        self.setup = setup or current()
        with self.setup.scope():
            self._build_variables()
        self._fns: dict = {}
        self._cache: dict = {}
        self._cache_data = None
        self.history: list[dict] = []

    # ---- the candidate as tensors ----------------------------------------------------------

    def _proxy(self, arch: ArchSpec) -> ArchSpec:
        return proxy_arch(arch, **self.proxy)

    def encode(self, arch: ArchSpec) -> dict[str, np.ndarray]:
        """The candidate's path: per stage block type, kernel, activation, output channels,
        repeats, expanded channels of the first and later repeats, residual flags."""
        p = self._proxy(arch)
        if len(p.blocks) != len(self.dims) or tuple(b.stride for b in p.blocks) != self.stage_strides:
            raise ValueError(f"{arch.name}: not a candidate of this supernet's space (stages or strides differ)")
        if p.stem.out_channels != self.stem_channels or p.head_channels != self.head_channels:
            raise ValueError(f"{arch.name}: stem/head differ from the supernet's")
        rows = []
        cin = self.stem_channels
        for b, d in zip(p.blocks, self.dims):
            if b.type not in self.types or b.se_ratio:
                raise ValueError(f"{arch.name}: block {b.encode()} is not covered by the supernet")
            act = b.activation or p.activation
            e = b.expand_ratio
            mid0 = make_divisible(cin * e, 8) if b.type != "conv" else 0
            mid1 = make_divisible(b.out_channels * e, 8) if b.type != "conv" else 0
            res0 = int(b.type != "conv" and b.skip and b.stride == 1 and cin == b.out_channels)
            res1 = int(b.type != "conv" and b.skip)
            rows.append([self.types.index(b.type), b.kernel, self.acts.index(act), b.out_channels,
                         b.repeats, mid0, mid1, res0, res1])
            if b.out_channels > d.cout or b.repeats > d.repeats or b.kernel > d.kernel or max(mid0, mid1) > d.mid:
                raise ValueError(f"{arch.name}: {b.encode()} exceeds the supernet's largest stage")
            cin = b.out_channels
        return {"stages": np.asarray(rows, dtype=np.int32),
                "act": np.int32(self.acts.index(p.activation))}

    # ---- variables -------------------------------------------------------------------------

    def _build_variables(self) -> None:
        import tensorflow as tf

        rng = np.random.default_rng(self.seed)
        self.vars: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}

        def kernel(name, shape, fan_in):
            w = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), size=shape).astype(np.float32)
            self.vars[name] = tf.Variable(w, name=name.replace("/", "_"))

        def bn(name, c):
            self.vars[f"{name}/gamma"] = tf.Variable(np.ones(c, np.float32))
            self.vars[f"{name}/beta"] = tf.Variable(np.zeros(c, np.float32))
            self.stats[f"{name}/mean"] = tf.Variable(np.zeros(c, np.float32), trainable=False)
            self.stats[f"{name}/var"] = tf.Variable(np.ones(c, np.float32), trainable=False)

        kernel("stem_conv", (3, 3, 3, self.stem_channels), 27)
        bn("stem_conv_bn", self.stem_channels)
        for i, d in enumerate(self.dims, start=1):
            for j in range(1, d.repeats + 1):
                cin = d.cin if j == 1 else d.cout
                k = d.kernel
                pre = f"stage{i}_block{j}"
                if "conv" in self.types:
                    kernel(f"conv/{pre}_conv", (k, k, cin, d.cout), k * k * cin)
                    bn(f"conv/{pre}_conv_bn", d.cout)
                if "ibn" in self.types:
                    kernel(f"ibn/{pre}_expand_conv", (1, 1, cin, d.mid), cin)
                    bn(f"ibn/{pre}_expand_conv_bn", d.mid)
                    kernel(f"ibn/{pre}_dwconv", (k, k, d.mid, 1), k * k)
                    bn(f"ibn/{pre}_dwconv_bn", d.mid)
                    kernel(f"ibn/{pre}_project_conv", (1, 1, d.mid, d.cout), d.mid)
                    bn(f"ibn/{pre}_project_conv_bn", d.cout)
                if "fused" in self.types:
                    kernel(f"fused/{pre}_fused_conv", (k, k, cin, d.mid), k * k * cin)
                    bn(f"fused/{pre}_fused_conv_bn", d.mid)
                    kernel(f"fused/{pre}_project_conv", (1, 1, d.mid, d.cout), d.mid)
                    bn(f"fused/{pre}_project_conv_bn", d.cout)
        last = self.dims[-1].cout
        if self.head_channels:
            kernel("head_conv", (1, 1, last, self.head_channels), last)
            bn("head_conv_bn", self.head_channels)
            last = self.head_channels
        ncls = self.proxy["num_classes"]
        lim = np.sqrt(6.0 / (last + ncls))
        self.vars["logits/kernel"] = tf.Variable(rng.uniform(-lim, lim, (last, ncls)).astype(np.float32))
        self.vars["logits/bias"] = tf.Variable(np.zeros(ncls, np.float32))
        self.trainable = list(self.vars.values())

    # ---- the forward pass ------------------------------------------------------------------

    def _forward(self, x, enc, mode: str, weight=None, *, first: int = 1, last: int | None = None,
                 features: bool = False, weights: Mapping | None = None):
        """Logits of the path ``enc``. mode: "train" (batch statistics), "calib" (batch statistics,
        folded into the stored ones with ``weight``), "eval" (stored statistics).

        Every layer runs at the candidate's own shapes: its weights are the leading channels and
        the centre taps of the shared ones, sliced with the path's tensors (one traced graph serves
        every path; a candidate costs what its own network costs, not the largest one's).
        ``first``/``last`` (1-based, inclusive) run only those stages: with ``first > 1``, ``x`` is
        the output of stage ``first - 1`` at the path's width there, and the stem is skipped.
        ``features``: return the output of every stage run (a list), not the logits (no head).
        ``weights``: another set of the same variables (e.g. a frozen teacher's copy)."""
        import tensorflow as tf

        v, s = (self.vars if weights is None else weights), self.stats
        last = len(self.dims) if last is None else int(last)

        def norm(y, name, c):
            gamma, beta = v[f"{name}/gamma"][:c], v[f"{name}/beta"][:c]
            if mode == "eval":
                mean, var = s[f"{name}/mean"][:c], s[f"{name}/var"][:c]
            else:
                mean, var = tf.nn.moments(y, axes=[0, 1, 2])
                if mode == "calib":
                    for stat, new in (("mean", mean), ("var", var)):
                        old = s[f"{name}/{stat}"]
                        old.assign(tf.concat([old[:c] * (1 - weight) + new * weight, old[c:]], 0))
            return tf.nn.batch_normalization(y, mean, var, beta, gamma, EPS)

        def act(y, idx):
            fns = {"relu": tf.nn.relu, "relu6": tf.nn.relu6,
                   "hswish": lambda t: t * tf.nn.relu6(t + 3.0) / 6.0, "swish": tf.nn.silu}
            if len(self.acts) == 1:
                return fns[self.acts[0]](y)
            return tf.switch_case(idx, [lambda f=fns[a]: f(y) for a in self.acts])

        def kern(name, k, kmax, cin, cout):  # the centre k x k taps, first cin inputs, first cout outputs
            w = v[name]
            if kmax > 1:
                lo = (kmax - k) // 2
                w = w[lo:lo + k, lo:lo + k]
            return w[:, :, :cin, :cout]

        def channels(y):
            return tf.shape(y)[-1]

        y = x
        if first == 1:
            y = tf.nn.conv2d(x, v["stem_conv"], self.stem_stride, "SAME")
            y = act(norm(y, "stem_conv_bn", self.stem_channels), enc["act"])
        outs = []
        for i, d in enumerate(self.dims, start=1):
            if i < first or i > last:
                continue
            st = enc["stages"][i - 1]
            t_idx, k, a_idx, c, reps, mid0, mid1, res0, res1 = (st[n] for n in range(9))
            for j in range(1, d.repeats + 1):
                stride = d.stride if j == 1 else 1
                mid = mid0 if j == 1 else mid1
                res = res0 if j == 1 else res1
                pre = f"stage{i}_block{j}"
                inp = y

                def residual(z, inp=inp, res=res, stride=stride):
                    if stride != 1:
                        return z
                    return tf.cond(res > 0, lambda: z + inp, lambda: z)

                def conv_branch(inp=inp, pre=pre, stride=stride):
                    w = kern(f"conv/{pre}_conv", k, d.kernel, channels(inp), c)
                    return act(norm(tf.nn.conv2d(inp, w, stride, "SAME"), f"conv/{pre}_conv_bn", c), a_idx)

                def ibn_branch(inp=inp, pre=pre, stride=stride, mid=mid, residual=residual):
                    z = tf.nn.conv2d(inp, kern(f"ibn/{pre}_expand_conv", 1, 1, channels(inp), mid), 1, "SAME")
                    z = act(norm(z, f"ibn/{pre}_expand_conv_bn", mid), a_idx)
                    w = kern(f"ibn/{pre}_dwconv", k, d.kernel, mid, 1)
                    z = tf.nn.depthwise_conv2d(z, w, [1, stride, stride, 1], "SAME")
                    z = act(norm(z, f"ibn/{pre}_dwconv_bn", mid), a_idx)
                    z = tf.nn.conv2d(z, kern(f"ibn/{pre}_project_conv", 1, 1, mid, c), 1, "SAME")
                    return residual(norm(z, f"ibn/{pre}_project_conv_bn", c))

                def fused_branch(inp=inp, pre=pre, stride=stride, mid=mid, residual=residual):
                    w = kern(f"fused/{pre}_fused_conv", k, d.kernel, channels(inp), mid)
                    z = act(norm(tf.nn.conv2d(inp, w, stride, "SAME"), f"fused/{pre}_fused_conv_bn", mid), a_idx)
                    z = tf.nn.conv2d(z, kern(f"fused/{pre}_project_conv", 1, 1, mid, c), 1, "SAME")
                    return residual(norm(z, f"fused/{pre}_project_conv_bn", c))

                fns = {"conv": conv_branch, "ibn": ibn_branch, "fused": fused_branch}
                branches = [fns[t] for t in self.types]

                def block(branches=branches):
                    return branches[0]() if len(branches) == 1 else tf.switch_case(t_idx, branches)

                if j == 1:
                    y = block()
                else:
                    y = tf.cond(j <= reps, block, lambda inp=inp: inp)
            outs.append(y)
        if features:
            return outs
        if self.head_channels:
            w = v["head_conv"][:, :, :channels(y), :]
            y = act(norm(tf.nn.conv2d(y, w, 1, "SAME"), "head_conv_bn", self.head_channels), enc["act"])
        y = tf.reduce_mean(y, axis=[1, 2])
        return tf.matmul(y, v["logits/kernel"][:channels(y)]) + v["logits/bias"]

    # ---- compiled steps --------------------------------------------------------------------

    def _fn(self, name: str):
        import tensorflow as tf

        if name in self._fns:
            return self._fns[name]
        if name == "accumulate":
            @tf.function(reduce_retracing=True)
            def fn(x, y, stages, act):
                with tf.GradientTape() as tape:
                    logits = self._forward(x, {"stages": stages, "act": act}, "train")
                    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                    # summed over the replicas (each one's share of the batch): the batch's mean
                    share = loss * (1.0 / self.setup.replicas)
                for acc, g in zip(self._acc, tape.gradient(share, self.trainable)):
                    if g is not None:
                        acc.assign_add(g)
                return loss
        elif name == "apply":
            @tf.function(reduce_retracing=True)
            def fn(lr, step):
                # Lazy Adam on the accumulated gradients, then clear them: only the weights the
                # step's paths used (non-zero gradient) move. Plain Adam keeps moving a weight with
                # its stale momentum while other paths run, and the supernet did not learn
                # (default params, 3 epochs: loss 2.35-2.41 with every weight updated each step).
                b1, b2 = 0.9, 0.999
                c1, c2 = 1 - tf.pow(b1, step), 1 - tf.pow(b2, step)
                for w, g, m, v in zip(self.trainable, self._acc, self._m, self._v):
                    used = tf.not_equal(g, 0.0)
                    m.assign(tf.where(used, b1 * m + (1 - b1) * g, m))
                    v.assign(tf.where(used, b2 * v + (1 - b2) * tf.square(g), v))
                    w.assign_sub(tf.where(used, lr * (m / c1) / (tf.sqrt(v / c2) + 1e-7), 0.0))
                    g.assign(tf.zeros_like(g))
                return step
        elif name == "distill":
            stage_set = {id(w) for k, w in self.vars.items() if k.startswith(tuple(f"{t}/" for t in TYPES))}

            @tf.function(reduce_retracing=True)
            def fn(x, stages, act, train):
                # Only the stages learn (the teacher's stem and head stay as they are).
                with tf.GradientTape() as tape:
                    losses = self._stage_losses(x, {"stages": stages, "act": act})
                    share = tf.reduce_sum(losses) * (1.0 / self.setup.replicas)
                if train:
                    grads = tape.gradient(share, self.trainable)
                    for acc, w, g in zip(self._acc, self.trainable, grads):
                        if g is not None and id(w) in stage_set:
                            acc.assign_add(g)
                return losses
        elif name == "calib":
            @tf.function(reduce_retracing=True)
            def fn(x, stages, act, weight):
                self._forward(x, {"stages": stages, "act": act}, "calib", weight)
                return tf.constant(0)
        else:
            @tf.function(reduce_retracing=True)
            def fn(x, stages, act):
                return self._forward(x, {"stages": stages, "act": act}, "eval")
        self._fns[name] = fn
        return fn

    def _run(self, fn, x, y, *rest):
        """``fn(x, [y,] *rest)`` over the strategy's replicas, each on its share of the batch; the
        mean of their results (one replica: ``fn`` as it is)."""
        if self.setup.replicas == 1:
            return fn(x, *rest) if y is None else fn(x, y, *rest)
        import tensorflow as tf

        st, size = self.setup.strategy, int(x.shape[0])

        def share(t):
            def part(ctx):
                i, k = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
                return t[size * i // k: size * (i + 1) // k]
            return st.experimental_distribute_values_from_function(part)

        args = (share(x),) if y is None else (share(x), share(y))
        out = st.run(fn, args=(*args, *rest))
        return st.reduce(tf.distribute.ReduceOp.MEAN, out, axis=None)

    # ---- public API ------------------------------------------------------------------------

    def _stage_losses(self, x, enc):
        """Per stage, how far the path's stage is from the teacher's (`stage_loss`): its output
        against the teacher's output of that stage, given the teacher's input to it (cut or
        zero-padded to the path's input width; outputs compared at the stage's largest width)."""
        import tensorflow as tf

        feats = self._forward(x, self._teacher_enc, "train", features=True, weights=self._teacher)
        losses = []
        for i, d in enumerate(self.dims, start=1):
            if i == 1:
                inp, first = x, 1
            else:
                inp, first = _fit_channels(feats[i - 2], enc["stages"][i - 2][3], d.cin), i
            out = self._forward(inp, enc, "train", first=first, last=i, features=True)[-1]
            losses.append(stage_loss(_fit_channels(out, d.cout, d.cout),
                                     tf.stop_gradient(_fit_channels(feats[i - 1], d.cout, d.cout))))
        return tf.stack(losses)

    def distill(self, data, teacher: ArchSpec, *, teacher_epochs: int, epochs: int, batch_size: int = 128,
                learning_rate: float = 2e-3, seed: int = 0, log=None) -> dict:
        """Blockwise distillation (DNA, Li et al. 2020): train the ``teacher`` path alone for
        ``teacher_epochs`` (stem, head and its stages), freeze a copy of it, then train every
        stage of one random path per batch to reproduce the frozen teacher's output of that stage
        from the teacher's input to it, all stages at once. Stem and head stay the teacher's.

        Each stage thus learns the teacher's features whatever block type, kernel, width or depth
        it takes, so stages chain into working subnets; training all paths end to end instead
        (rule uniform/sandwich) mixes unrelated block types and stays near chance on a proxy
        budget. Known limit: a ``conv`` stage ends in its activation (never negative) while a
        fused/ibn teacher's stage ends in a signed projection, so conv stages matched the teacher
        worse (normalised stage loss ~0.45-0.8 vs ~0.1-0.5 after 20 epochs on the default params,
        before `stage_loss` let offsets go free) whatever their other choices; with them free, the
        correlation candidate with most conv stages is still the most underrated (stage 2 0.401,
        its subnet 0.256 after 6 + 40 epochs, `benchmarks/proxy_bench.py`). Returns timing and
        loss figures (``stage_losses``: per stage, last epoch)."""
        import tensorflow as tf

        t0 = time.perf_counter()
        rec_t = self.train(data, epochs=teacher_epochs, batch_size=batch_size, learning_rate=learning_rate,
                           seed=seed, log=log, paths=lambda rng: [teacher])
        with self.setup.scope():
            self._teacher = {k: tf.Variable(w.numpy(), trainable=False) for k, w in self.vars.items()}
        enc_t = self.encode(teacher)
        self._teacher_enc = {"stages": tf.constant(enc_t["stages"]), "act": tf.constant(enc_t["act"])}
        self._fns.pop("distill", None)
        step_fn, apply = self._fn("distill"), self._fn("apply")
        for m in (*self._m, *self._v):  # a fresh optimizer for the students
            m.assign(tf.zeros_like(m))
        rng = np.random.default_rng([seed, 13])
        step, per_epoch, t1 = 0, [], time.perf_counter()
        for epoch, batches in self._epochs(data, epochs=epochs, batch_size=batch_size,
                                           learning_rate=learning_rate, seed=seed + 100):
            losses = []
            for step, lr, xb, _ in batches:
                enc = self.encode(self.space.sample(rng))
                losses.append(np.asarray(self._run(step_fn, xb, None, enc["stages"], enc["act"],
                                                   tf.constant(True))))
                apply(tf.constant(lr, tf.float32), tf.constant(float(step)))
            per_epoch = np.mean(losses, axis=0)
            if log:
                log(f"supernet distillation epoch {epoch + 1}/{epochs}: stage losses "
                    + " ".join(f"{v:.2f}" for v in per_epoch))
        wall = time.perf_counter() - t0
        rec = {"rule": "distill", "teacher": teacher.encode(), "teacher_epochs": int(teacher_epochs),
               "teacher_final_loss": rec_t["final_loss"], "epochs": int(epochs), "steps": step,
               "wall_s": wall, "images_per_s": step * min(int(batch_size), len(data.y_train)) / (time.perf_counter() - t1),
               "stage_losses": [float(v) for v in per_epoch],
               "final_loss": float(np.sum(per_epoch)) if len(per_epoch) else float("nan")}
        self.history.append(rec)
        return rec

    def _epochs(self, data, *, epochs: int, batch_size: int, learning_rate: float, seed: int):
        """The training batches of ``data``, epoch by epoch: yields ``(epoch, batches)`` where
        ``batches`` yields ``(step, lr, xb, yb)``, ``lr`` the cosine decay of ``learning_rate``
        over all steps (augmented, shuffled with ``seed + epoch``, last partial batch dropped)."""
        from accelnas.train.data import make_pipeline

        x, y = data.split("train")
        batch_size = min(int(batch_size), len(x))
        total = max(1, len(x) // batch_size) * int(epochs)
        counter = iter(range(1, total + 1))

        def batches(ds):
            for xb, yb in ds:
                step = next(counter)
                yield step, learning_rate * 0.5 * (1 + np.cos(np.pi * (step - 1) / total)), xb, yb

        for epoch in range(int(epochs)):
            yield epoch, batches(make_pipeline(x, y, batch_size=batch_size, resolution=self.proxy["resolution"],
                                               training=True, seed=seed + epoch, augment=True, cache=False,
                                               mean=data.mean, std=data.std, drop_remainder=True))

    def paths_for_step(self, rng: np.random.Generator, rule: str) -> list[ArchSpec]:
        """The paths one training step runs: one random path (uniform), or the largest, the
        smallest (block types and activations drawn at random) and two random ones (sandwich)."""
        if rule == "uniform":
            return [self.space.sample(rng)]
        if rule == "sandwich":
            rand = self.space.sample_values
            return [_extreme(self.space, max, rand(rng)), _extreme(self.space, min, rand(rng)),
                    self.space.sample(rng), self.space.sample(rng)]
        raise ValueError(f"unknown supernet rule {rule!r}; choose one of {', '.join(PATH_RULES)}")

    def train(self, data, *, epochs: int, batch_size: int = 128, learning_rate: float = 2e-3,
              rule: str = "uniform", seed: int = 0, log=None, paths=None) -> dict:
        """Train the shared weights on ``data``'s training split, one sampled path (or the sandwich
        rule's four) per batch, Adam with a cosine decay. ``paths``: ``rng -> [ArchSpec, ...]``
        instead of the rule (e.g. one fixed path). Returns timing and loss figures."""
        import tensorflow as tf


        if rule not in PATH_RULES:
            raise ValueError(f"unknown supernet rule {rule!r}; choose one of {', '.join(PATH_RULES)}")
        label, paths = (rule, lambda rng: self.paths_for_step(rng, rule)) if paths is None else ("given paths", paths)
        rng = np.random.default_rng([seed, 7])
        step, t0, images, epoch_losses = 0, time.perf_counter(), 0, []
        if not hasattr(self, "_acc"):
            # gradients accumulate summed over the replicas (one device: a plain variable)
            agg = tf.VariableAggregation.SUM if self.setup.replicas > 1 else tf.VariableAggregation.NONE
            with self.setup.scope():
                self._acc = [tf.Variable(tf.zeros_like(w), trainable=False, aggregation=agg)
                             for w in self.trainable]
                self._m = [tf.Variable(tf.zeros_like(w), trainable=False) for w in self.trainable]
                self._v = [tf.Variable(tf.zeros_like(w), trainable=False) for w in self.trainable]
        accumulate, apply = self._fn("accumulate"), self._fn("apply")
        for epoch, batches in self._epochs(data, epochs=epochs, batch_size=batch_size,
                                           learning_rate=learning_rate, seed=seed):
            epoch_losses = []
            for step, lr, xb, yb in batches:
                loss_sum, step_paths = 0.0, paths(rng)
                for arch in step_paths:
                    enc = self.encode(arch)
                    loss_sum += float(self._run(accumulate, xb, yb, enc["stages"], enc["act"]))
                apply(tf.constant(lr, tf.float32), tf.constant(float(step)))
                images += int(xb.shape[0]) * len(step_paths)
                epoch_losses.append(loss_sum / len(step_paths))
            if log:
                log(f"supernet epoch {epoch + 1}/{epochs}: loss {np.mean(epoch_losses):.3f}")
        wall = time.perf_counter() - t0
        rec = {"epochs": int(epochs), "steps": step, "rule": label, "wall_s": wall,
               "images_per_s": images / wall if wall else float("nan"),
               "final_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan")}
        self.history.append(rec)
        return rec

    def _batches(self, data, split: str, n: int | None, batch_size: int, sample_seed: int | None):
        """Normalized batches (no augmentation) of ``n`` images of a split (None: all): a seeded
        random sample when ``sample_seed`` is given, else the first ``n``. Prepared once per data
        set and kept: every candidate is calibrated and scored on the same images."""
        from accelnas.train.data import make_pipeline

        if self._cache_data is not data:  # another data set: drop the batches of the last one
            self._cache, self._cache_data = {}, data
        key = (split, n, batch_size, sample_seed)
        if key not in self._cache:
            x, y = data.split(split)
            if len(x) == 0:
                raise ValueError(f"the {split!r} split of {data.source} is empty")
            count = len(x) if n is None else min(int(n), len(x))
            idx = (np.sort(np.random.default_rng([sample_seed, 11]).choice(len(x), count, replace=False))
                   if sample_seed is not None else np.arange(count))
            ds = make_pipeline(x[idx], y[idx], batch_size=batch_size, resolution=self.proxy["resolution"],
                               training=False, seed=0, augment=False, cache=False,
                               mean=data.mean, std=data.std)
            self._cache[key] = [(xb, np.asarray(yb)) for xb, yb in ds]
        return self._cache[key]

    def calibrate(self, arch: ArchSpec, data, *, images: int = 256, batch_size: int = 256,
                  seed: int = 0) -> None:
        """Recalibrate every BatchNorm on the candidate's path: the average of the batch statistics
        of ``images`` training images (a seeded sample, no augmentation)."""
        import tensorflow as tf

        enc = self.encode(arch)
        fn = self._fn("calib")
        for k, (xb, _) in enumerate(self._batches(data, "train", images, batch_size, seed), start=1):
            fn(xb, enc["stages"], enc["act"], tf.constant(1.0 / k))

    def predict(self, arch: ArchSpec, images) -> np.ndarray:
        """Class probabilities of normalized ``images`` (after `calibrate` for this candidate)."""
        import tensorflow as tf

        enc = self.encode(arch)
        return tf.nn.softmax(self._fn("eval")(images, enc["stages"], enc["act"])).numpy()

    def evaluate(self, arch: ArchSpec, data, *, split: str = "val", images: int | None = None,
                 calib_images: int = 256, batch_size: int = 256, seed: int = 0) -> dict:
        """The candidate's stage-1 score: top-1 accuracy of its subnet on ``split`` (the first
        ``images`` of it; None: all) with inherited weights after BatchNorm recalibration."""
        t0 = time.perf_counter()
        self.calibrate(arch, data, images=calib_images, seed=seed)
        enc = self.encode(arch)
        fn = self._fn("eval")
        correct = total = 0
        for xb, yb in self._batches(data, split, images, batch_size, None):
            correct += int((fn(xb, enc["stages"], enc["act"]).numpy().argmax(1) == yb).sum())
            total += len(yb)
        return {"accuracy": correct / total, "eval_s": time.perf_counter() - t0,
                "eval_images": int(total), "calib_images": int(calib_images)}

    # ---- export and persistence --------------------------------------------------------------

    def subnet_weights(self, arch: ArchSpec) -> dict[str, list[np.ndarray]]:
        """The candidate's inherited weights under the Keras layer names of
        ``accelnas.space.builder.build(proxy_arch(arch))`` (BatchNorm: gamma, beta and the
        statistics of the last `calibrate`)."""
        p = self._proxy(arch)
        enc = self.encode(arch)["stages"]
        v = {k: w.numpy() for k, w in self.vars.items()}
        s = {k: w.numpy() for k, w in self.stats.items()}
        out: dict[str, list[np.ndarray]] = {}

        def bn(src, dst, c):
            out[dst] = [v[f"{src}/gamma"][:c], v[f"{src}/beta"][:c], s[f"{src}/mean"][:c], s[f"{src}/var"][:c]]

        def crop(w, k):
            kmax = w.shape[0]
            lo = (kmax - k) // 2
            return w[lo:lo + k, lo:lo + k]

        out["stem_conv"] = [v["stem_conv"]]
        bn("stem_conv_bn", "stem_conv_bn", self.stem_channels)
        cin = self.stem_channels
        for i, (b, d) in enumerate(zip(p.blocks, self.dims), start=1):
            t, k, c = b.type, b.kernel, b.out_channels
            for j in range(1, b.repeats + 1):
                pre = f"stage{i}_block{j}"
                ci = cin if j == 1 else c
                mid = int(enc[i - 1][5] if j == 1 else enc[i - 1][6])
                if t == "conv":
                    out[f"{pre}_conv"] = [crop(v[f"conv/{pre}_conv"], k)[:, :, :ci, :c]]
                    bn(f"conv/{pre}_conv_bn", f"{pre}_conv_bn", c)
                elif t == "ibn":
                    out[f"{pre}_expand_conv"] = [v[f"ibn/{pre}_expand_conv"][:, :, :ci, :mid]]
                    bn(f"ibn/{pre}_expand_conv_bn", f"{pre}_expand_conv_bn", mid)
                    out[f"{pre}_dwconv"] = [crop(v[f"ibn/{pre}_dwconv"], k)[:, :, :mid, :]]
                    bn(f"ibn/{pre}_dwconv_bn", f"{pre}_dwconv_bn", mid)
                    out[f"{pre}_project_conv"] = [v[f"ibn/{pre}_project_conv"][:, :, :mid, :c]]
                    bn(f"ibn/{pre}_project_conv_bn", f"{pre}_project_conv_bn", c)
                else:
                    out[f"{pre}_fused_conv"] = [crop(v[f"fused/{pre}_fused_conv"], k)[:, :, :ci, :mid]]
                    bn(f"fused/{pre}_fused_conv_bn", f"{pre}_fused_conv_bn", mid)
                    out[f"{pre}_project_conv"] = [v[f"fused/{pre}_project_conv"][:, :, :mid, :c]]
                    bn(f"fused/{pre}_project_conv_bn", f"{pre}_project_conv_bn", c)
            cin = c
        last = cin
        if self.head_channels:
            out["head_conv"] = [v["head_conv"][:, :, :last, :]]
            bn("head_conv_bn", "head_conv_bn", self.head_channels)
            last = self.head_channels
        out["logits"] = [v["logits/kernel"][:last], v["logits/bias"]]
        return out

    def config(self) -> dict:
        """What defines this supernet (a saved one is reused only with the same)."""
        return {"space": json.loads(self.space.to_json()), "proxy": self.proxy, "seed": self.seed,
                "types": list(self.types), "acts": list(self.acts)}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: str | Path, meta: Mapping | None = None) -> Path:
        """The shared weights and statistics as one ``.npz`` (written atomically) with a JSON
        sidecar: config fingerprint, training history, ``meta``."""
        import io

        from accelnas.io import atomic_write_bytes, write_json

        path = Path(path)
        buf = io.BytesIO()
        np.savez(buf, **{f"v:{k}": w.numpy() for k, w in self.vars.items()},
                 **{f"s:{k}": w.numpy() for k, w in self.stats.items()})
        atomic_write_bytes(path, buf.getvalue())
        write_json(path.with_suffix(".json"), {"fingerprint": self.fingerprint(), "config": self.config(),
                                               "history": self.history, **dict(meta or {})})
        return path

    def load(self, path: str | Path) -> dict:
        """Load weights saved by `save`; returns the sidecar.

        Raises:
            ValueError: the file belongs to another supernet (space, proxy or seed differ) or is
                damaged.
        """
        path = Path(path)
        try:
            side = json.loads(path.with_suffix(".json").read_text())
            arrays = np.load(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the saved supernet ({e}); delete it to train again") from None
        if side.get("fingerprint") != self.fingerprint():
            raise ValueError(f"{path} holds a supernet of another space or proxy; delete it to train again")
        for k, w in self.vars.items():
            w.assign(arrays[f"v:{k}"])
        for k, w in self.stats.items():
            w.assign(arrays[f"s:{k}"])
        self.history = list(side.get("history", []))
        return side


def _fit_channels(y, c, cmax: int):
    """``y``'s first ``c`` channels, zero-padded when it has fewer (``cmax``: the most it may have)."""
    import tensorflow as tf

    y = tf.pad(y, [[0, 0], [0, 0], [0, 0], [0, cmax - tf.shape(y)[-1]]])
    return y[..., :c]


def stage_loss(out, target):
    """Distillation loss of one stage: the mean squared difference between the student's output
    and the teacher's, each with its per-channel mean (over batch and positions) removed, over the
    teacher's centred mean square. A per-channel offset is free because the next stage's first
    BatchNorm, recalibrated for every subnet, removes it (up to the zero padding at borders): a
    ``conv`` stage, whose ReLU output is never negative, can then match a signed teacher feature
    plus an offset. Channels a narrower student lacks count as misses (zeros)."""
    import tensorflow as tf

    target = target - tf.reduce_mean(target, axis=[0, 1, 2])
    out = out - tf.reduce_mean(out, axis=[0, 1, 2])
    return tf.reduce_mean(tf.square(out - target)) / (tf.reduce_mean(tf.square(target)) + 1e-6)


def supernet_for(space: SearchSpace, proxy: Mapping, num_classes: int, seed: int = 0) -> Supernet:
    """The supernet of a search space for a ``proxy`` params section."""
    return Supernet(space, resolution=proxy["resolution"], width_mult=proxy["width_mult"],
                    num_classes=num_classes, seed=seed)


SUPERNET_FILE = "supernet.npz"


def training_meta(params: Mapping) -> dict:
    """The params that decide a supernet's shared weights beyond its config (data and training)."""
    pr, sn = params["proxy"], params["supernet"]
    meta = {"dataset": params["dataset"], "seed": int(params["seed"]), "subset": pr["subset"],
            "val_images": pr["val_images"], "batch_size": pr["batch_size"], "epochs": sn["epochs"],
            "rule": sn["rule"]}
    if sn["rule"] == "distill":
        meta.update(teacher=sn["teacher"], teacher_epochs=sn["teacher_epochs"])
    return meta


def teacher_arch(space: SearchSpace, name: str) -> ArchSpec:
    """The teacher path of rule distill: the member of ``space`` nearest to the zoo model ``name``.

    Raises:
        ValueError: the space cannot express it (other stage count, block type or activation)."""
    try:
        return space.zoo_member(name)
    except ValueError as e:
        raise ValueError(f"supernet.teacher: {e}") from None


def trained_supernet(space: SearchSpace, params: Mapping, data, path: str | Path, *,
                     log=print) -> Supernet:
    """The supernet of ``space`` for ``params``, trained once on ``data``: loaded from ``path``
    when a supernet with the same space, proxy, seed, data and training was saved there, else
    trained now and saved (a damaged or different file is replaced).

    Raises:
        ValueError: ``data`` is streamed from disk (``folder:``, ``tfrecord:``, ``tfds:``): the supernet
            trains on in-memory data only.
    """
    if not hasattr(data, "split"):
        raise ValueError(f"search.evaluator supernet trains on in-memory data (cifar10, synthetic)"
                         f"; {data.source} is streamed from disk: use search.evaluator "
                         "standalone with it")
    net = supernet_for(space, params["proxy"], len(data.classes), seed=int(params["seed"]))
    meta = training_meta(params)
    path = Path(path)
    if path.exists():
        try:
            side = net.load(path)
            if side.get("training") == meta:
                if log:
                    log(f"supernet: reusing {path} (trained {side['history'][-1]['wall_s']:.0f} s)")
                return net
            reason = "trained with other data or settings"
        except ValueError as e:
            reason = str(e)
        if log:
            log(f"supernet: {path} not reused ({reason}); training again")
        net = supernet_for(space, params["proxy"], len(data.classes), seed=int(params["seed"]))
    sn = params["supernet"]
    if sn["rule"] == "distill":
        rec = net.distill(data, teacher_arch(space, sn["teacher"]), teacher_epochs=sn["teacher_epochs"],
                          epochs=sn["epochs"], batch_size=params["proxy"]["batch_size"],
                          seed=int(params["seed"]), log=log)
    else:
        rec = net.train(data, epochs=sn["epochs"], batch_size=params["proxy"]["batch_size"],
                        rule=sn["rule"], seed=int(params["seed"]), log=log)
    net.save(path, {"training": meta})
    if log:
        log(f"supernet: trained {rec['steps']} steps in {rec['wall_s']:.0f} s "
            f"({rec['images_per_s']:.0f} images/s), saved to {path}")
    return net


def supernet_evaluator(net: Supernet, params: Mapping):
    """The search objective ``(arch, data, seed) -> dict`` scoring candidates on ``net``: accuracy
    on the validation split with inherited weights after BatchNorm recalibration (the same
    calibration images for every candidate)."""
    sn = params["supernet"]

    def score(arch: ArchSpec, data, seed: int) -> dict:
        return net.evaluate(arch, data, images=sn["eval_images"] or None,
                            calib_images=sn["calib_images"], seed=0)
    return score
