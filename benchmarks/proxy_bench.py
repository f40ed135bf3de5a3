"""How far the stage-1 ranking can be trusted: stage-1 evaluators against a longer stage-2 training.

    python benchmarks/proxy_bench.py [--params params/default.yaml] [--candidates 12]
        [--stage2-subset N] [--stage2-epochs N] [--seeds 0,1] [--no-standalone]
        [--set supernet.epochs=30] [--json]

Correlation candidates: ``--candidates`` architectures of the params' search space (target
accelerator's exclusions) that pass the search's screen, spread over the latency range (sorted by
the search's latency estimate on the target, taken at evenly spaced quantiles of a seeded sample),
plus the EfficientNet-EdgeTPU-S skeleton the space is built on. Each is scored by

* ``supernet``: its subnet's validation accuracy with inherited weights after BatchNorm
  recalibration (`accelnas.search.supernet`, trained once with the params' ``supernet`` section on
  the params' proxy data);
* ``standalone``: its proxy trained from scratch with the params' ``proxy`` budget, seed 0 (what
  the search does with ``search.evaluator: standalone``);
* ``naswot``: the zero-cost NASWOT score at initialisation (benchmarks/search_bench.py);
* ``stage2``: the mean validation accuracy over ``--seeds`` of its proxy trained with the larger
  stage-2 budget (the params' ``stage2`` section, or ``--stage2-subset`` images and
  ``--stage2-epochs`` epochs), the reference.

Printed: Kendall tau of each stage-1 evaluator against stage 2 with a 95 % bootstrap interval
(2,000 resamples of the candidates; `accelnas.search.proxy_fidelity`), the stage-2 seed spread
(mean over candidates of the largest minus the smallest seed's accuracy),
and the cost of each evaluator per candidate. Everything runs on this machine; the figures in the
closing notes come from this script with the arguments they name.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from accelnas import params as P  # noqa: E402
from accelnas.search.data import load_arrays, load_proxy  # noqa: E402
from accelnas.search.proxy_fidelity import correlation_candidates, fidelity_summary  # noqa: E402
from accelnas.search.supernet import Supernet, supernet_evaluator, trained_supernet  # noqa: E402
from accelnas.search.tuner import setup  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--stage2-subset", type=int, default=None, help="default: the params' stage2.subset")
    ap.add_argument("--stage2-epochs", type=int, default=None, help="default: the params' stage2.epochs")
    ap.add_argument("--seeds", default="0,1", help="stage-2 seeds")
    ap.add_argument("--no-standalone", action="store_true", help="skip the stand-alone proxy scores")
    ap.add_argument("--supernet-file", default=None, help="reuse/save the trained supernet here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a params key (dotted, YAML value), e.g. --set supernet.epochs=30")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    from search_bench import NaswotObjective
    from accelnas.search.train import train_proxy

    args = parse_args(argv)
    params = P.load(args.params)
    if args.set:
        import yaml

        pairs = [s.split("=", 1) for s in args.set]
        if any(len(kv) != 2 for kv in pairs):
            raise SystemExit("--set wants KEY=VALUE, e.g. --set supernet.epochs=30")
        params = P.override(params, {k: yaml.safe_load(v) for k, v in pairs}, source="--set")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else print
    su = setup(params)
    pr = params["proxy"]
    data1 = load_proxy(params)
    cands = correlation_candidates(su.space, su.screen, params["target_accelerator"], args.candidates,
                                   params["seed"])
    say(f"{len(cands)} candidates; stage 1 on {len(data1.y_train)} train / {len(data1.y_val)} val images")
    rows = [{"name": a.name, "arch": a.encode(),
             "latency_ms": su.screen.latencies(a)[params["target_accelerator"]]} for a in cands]
    cost = {}

    t = time.perf_counter()
    path = Path(args.supernet_file) if args.supernet_file else Path(os.environ.get("TMPDIR", "/tmp")) / "proxy_bench_supernet.npz"
    net: Supernet = trained_supernet(su.space, params, data1, path, log=say)
    cost["supernet_train_s"] = time.perf_counter() - t
    score = supernet_evaluator(net, params)
    t = time.perf_counter()
    for r, a in zip(rows, cands):
        r["supernet"] = score(a, data1, 0)["accuracy"]
    cost["supernet_s_per_candidate"] = (time.perf_counter() - t) / len(cands)
    say("supernet scores done")

    nw = NaswotObjective(data1)
    t = time.perf_counter()
    for r, a in zip(rows, cands):
        r["naswot"] = nw.score(a)
    cost["naswot_s_per_candidate"] = (time.perf_counter() - t) / len(cands)

    def train(a, data, epochs, seed, width=pr["width_mult"]):
        return train_proxy(a, data, epochs=epochs, batch_size=pr["batch_size"], resolution=pr["resolution"],
                           width_mult=width, seed=seed).accuracy

    if not args.no_standalone:
        t = time.perf_counter()
        for r, a in zip(rows, cands):
            r["standalone"] = train(a, data1, pr["epochs"], 0)
            say(f"standalone {r['name']}: {r['standalone']:.3f}")
        cost["standalone_s_per_candidate"] = (time.perf_counter() - t) / len(cands)

    args.stage2_subset = args.stage2_subset or params["stage2"]["subset"]
    args.stage2_epochs = args.stage2_epochs or params["stage2"]["epochs"]
    data2 = load_arrays(params["dataset"], seed=params["seed"], subset=args.stage2_subset,
                        val_images=pr["val_images"], image_size=pr["resolution"])
    t = time.perf_counter()
    for r, a in zip(rows, cands):
        accs = [train(a, data2, args.stage2_epochs, s, params["stage2"]["width_mult"]) for s in seeds]
        r["stage2_seeds"] = accs
        r["stage2"] = float(np.mean(accs))
        say(f"stage 2 {r['name']}: {accs}")
    cost["stage2_s_per_candidate"] = (time.perf_counter() - t) / len(cands)

    evaluators = [e for e in ("supernet", "standalone", "naswot") if e in rows[0]]
    import pandas as pd

    fid = fidelity_summary(pd.DataFrame(rows), evaluators)
    summary = {("latency_only" if k == "latency only" else k): {"tau": v["tau"], "ci95": [v["ci_low"], v["ci_high"]],
                                                                "n": v["n"]}
               for k, v in fid["kendall"].items()}
    spread = fid.get("seed_spread")
    out = {"params": args.params, "stage1": {"proxy": pr, "supernet": params["supernet"]},
           "stage2": {"subset": args.stage2_subset, "epochs": args.stage2_epochs, "seeds": seeds},
           "kendall_vs_stage2": summary, "stage2_seed_spread": spread, "cost_s": cost,
           "rows": rows, "cpu_count": os.cpu_count()}
    if args.json:
        print(json.dumps(out, default=float))
    else:
        print(f"{'name':24s} {'lat ms':>7s} " + " ".join(f"{e:>10s}" for e in evaluators) + f" {'stage2':>8s}")
        for r in rows:
            print(f"{r['name']:24s} {r['latency_ms']:7.2f} " + " ".join(f"{r[e]:10.3f}" for e in evaluators)
                  + f" {r['stage2']:8.3f}")
        for e, s in summary.items():
            print(f"Kendall tau({e}, stage 2) = {s['tau']:+.3f}  95% CI [{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}]  n={s['n']}")
        print(f"stage-2 seed spread (mean max - min over seeds): {spread}")
        print("cost: " + ", ".join(f"{k} {v:.1f}" for k, v in cost.items()))
    return out


if __name__ == "__main__":
    main()
