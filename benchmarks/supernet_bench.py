"""What slows weight-sharing training: the supernet trained with one group of decisions varied.

    python benchmarks/supernet_bench.py [--params params/default.yaml] [--epochs 3]
        [--groups fixed,kernel,width,depth,block,all] [--rule uniform|sandwich|distill] [--eval 6]
        [--batch-size N] [--learning-rate LR] [--set KEY=VALUE ...] [--json]

For each group, a fresh supernet (`accelnas.search.supernet`, the params' space and proxy data) is
trained ``--epochs`` epochs where every step's path is one fixed architecture (a seeded sample of
the space) except the group's decisions, which are drawn at random per step:

* ``fixed``: nothing varies (a stand-alone training of that architecture through the supernet);
* ``kernel``, ``width`` (channels and expansion), ``depth`` (repeats and activation), ``block``
  (block type per stage), ``all`` (the search's own path rule: ``--rule`` uniform or sandwich;
  ``distill``: the params' teacher path alone for ``supernet.teacher_epochs``, then ``--epochs``
  of blockwise distillation, whose loss is the sum of the stages' normalized errors, not a
  cross-entropy: compare the subnets' accuracy).

Printed per group: the final training loss (mean over the last epoch; ln 10 = 2.303 is chance on
10 classes), images/s after the first epoch, and the mean validation accuracy of ``--eval`` random
subnets of the space after BatchNorm recalibration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from accelnas import params as P  # noqa: E402
from accelnas.train.load import load_proxy  # noqa: E402
from accelnas.search.supernet import supernet_for, teacher_arch  # noqa: E402
from accelnas.search.tuner import setup  # noqa: E402

GROUPS = {"fixed": (), "kernel": ("_kernel",), "width": ("_channels", "_expand_ratio"),
          "depth": ("_repeats", "_activation"), "block": ("_block",),
          "all": ("_block", "_kernel", "_expand_ratio", "_channels", "_repeats", "_se_ratio", "_activation")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--eval", type=int, default=6, help="random subnets evaluated per group")
    ap.add_argument("--rule", default="uniform", choices=("uniform", "sandwich", "distill"),
                    help="path rule of group 'all' (the others vary one group on one path per step)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the params' proxy.batch_size")
    ap.add_argument("--learning-rate", type=float, default=2e-3, help="peak of the cosine schedule (Adam)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a params key (dotted, YAML value), e.g. "
                         "--set 'search_space.block_types=[ibn, fused]'")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    params = P.load(a.params)
    if a.set:
        import yaml

        pairs = [kv.split("=", 1) for kv in a.set]
        if any(len(kv) != 2 for kv in pairs):
            raise SystemExit("--set wants KEY=VALUE, e.g. --set supernet.epochs=30")
        try:
            params = P.override(params, {k: yaml.safe_load(v) for k, v in pairs}, source="--set")
        except ValueError as e:
            raise SystemExit(str(e)) from None
    batch = a.batch_size or params["proxy"]["batch_size"]
    space = setup(params).space
    data = load_proxy(params)
    base = space.sample_values(np.random.default_rng([params["seed"], 5]))
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if a.json else print
    out = {}
    for group in a.groups.split(","):
        if group not in GROUPS:
            raise SystemExit(f"unknown group {group!r}; choose from {', '.join(GROUPS)}")
        net = supernet_for(space, params["proxy"], len(data.classes), seed=params["seed"])
        suffixes = GROUPS[group]

        def paths(rng, rule, suffixes=suffixes):
            v = space.sample_values(rng)
            return [space.from_values({k: (v[k] if k.endswith(suffixes) and suffixes else base[k])
                                       for k in base})]

        if group != "all":
            net.paths_for_step = paths
        losses = []
        if group == "all" and a.rule == "distill":
            sn = params["supernet"]
            rec = net.distill(data, teacher_arch(space, sn["teacher"]), teacher_epochs=sn["teacher_epochs"],
                              epochs=a.epochs, batch_size=batch, learning_rate=a.learning_rate,
                              seed=params["seed"],
                              log=lambda m: "distillation" in m and losses.append(
                                  sum(float(v) for v in m.split("stage losses ")[1].split())))
        else:
            rec = net.train(data, epochs=a.epochs, batch_size=batch, learning_rate=a.learning_rate,
                            rule=a.rule if group == "all" else "uniform", seed=params["seed"],
                            log=lambda m: losses.append(float(m.rsplit(" ", 1)[1])))
        rng = np.random.default_rng(1)
        accs = [net.evaluate(space.sample(rng), data, calib_images=params["supernet"]["calib_images"])["accuracy"]
                for _ in range(a.eval)]
        out[group] = {"final_loss": rec["final_loss"], "loss_per_epoch": losses,
                      "images_per_s": rec["images_per_s"], "wall_s": rec["wall_s"],
                      "subnet_accuracy_mean": float(np.mean(accs)) if accs else None,
                      "subnet_accuracies": accs}
        say(f"{group:7s} final loss {rec['final_loss']:.3f} (per epoch {[round(x, 3) for x in losses]}); "
            f"{rec['images_per_s']:.0f} images/s incl. tracing; random subnets' accuracy "
            f"{np.mean(accs) if accs else float('nan'):.3f}")
    result = {"params": a.params, "overrides": a.set, "batch_size": batch, "learning_rate": a.learning_rate,
              "epochs": a.epochs, "rule_of_all": a.rule, "train_images": int(len(data.y_train)),
              "groups": out, "cpu_count": os.cpu_count()}
    if a.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
