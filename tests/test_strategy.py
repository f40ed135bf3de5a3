"""Distributed training on a CPU-only machine (`accelnas.train.strategy`, `accelnas train`).

Devices are fixed when TensorFlow starts, so each strategy runs in a fresh process: two logical
CPU devices for ``mirrored``, two local processes on 127.0.0.1 for ``multi_worker``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelnas.train import strategy as S

ROOT = Path(__file__).resolve().parents[1]
ACCELNAS = [sys.executable, "-m", "accelnas.cli"]
TINY = ("name=tiny;res=32;classes=10;act=relu;se=efficientnet;stem=conv_r1_k3_s2_e1_c16;pool=0;"
        "blocks=fused_r1_k3_s1_e2_c16 ibn_r2_k3_s2_e4_c24;head=64;prelogits=0")
SMOKE = str(ROOT / "params" / "smoke.yaml")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def _train(out, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    cmd = [*ACCELNAS, "train", TINY, "--params", SMOKE, "--out", str(out), "--json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env(), cwd=ROOT)


# ------------------------------------------------------------------------------ TF_CONFIG

@pytest.mark.parametrize("text, match", [
    (None, "needs TF_CONFIG"),
    ("{cluster: 1", "not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}',
     "127.0.0.1:1 more than once"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "not in the cluster"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' and a 'task'"),
])
def test_bad_tf_config_is_refused(monkeypatch, text, match):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(S.StrategyError, match=match):
        S.read_tf_config(text if text is not None else "")


def test_tf_config_read():
    c = S.read_tf_config('{"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}, '
                         '"task": {"type": "worker", "index": 1}}')
    assert c == {"workers": ["h:1", "h:2", "h:3"], "task_type": "worker", "task_index": 1}


def test_unknown_values_are_refused():
    with pytest.raises(S.StrategyError, match="train.strategy: got 'tpu'"):
        S.configure({"strategy": "tpu"}, log=None)


def test_batch_and_learning_rate_scaling():
    base = dict(strategy=None, name="mirrored", requested="mirrored", precision="float32",
                jit_compile=False, replicas=4, devices=("a", "b", "c", "d"))
    assert S.Setup(**base).global_batch(128) == 128 and S.Setup(**base).learning_rate(0.1) == 0.1
    scaled = S.Setup(**base, scale_batch=True)
    assert scaled.global_batch(128) == 512 and scaled.learning_rate(0.1) == pytest.approx(0.4)


def test_mirrored_with_one_device_falls_back_in_one_line(monkeypatch):
    monkeypatch.setattr(S, "_SETUP", None)
    lines = []
    setup = S.configure({"strategy": "mirrored"}, log=lines.append)
    try:
        assert setup.name == "one_device" and setup.replicas == 1
        assert len(lines) == 1 and "one device here" in lines[0] and "logical_cpus" in lines[0]
    finally:
        monkeypatch.setattr(S, "_SETUP", None)


# ------------------------------------------------------------------------ mirrored vs one device

_LOSSES = """
import json, sys
from accelnas.train import strategy as S
setup = S.configure({"strategy": sys.argv[1], "logical_cpus": 2, "sync_batchnorm": True}, log=None)
import keras
from accelnas.space.arch import decode_arch
from accelnas.train.data import load_arrays
from accelnas.train.proxy_train import train_proxy
losses = []
class Record(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        losses.append(float(logs["loss"]))
data = load_arrays("synthetic", subset=640, seed=0, image_size=16)
r = train_proxy(decode_arch(sys.argv[2]), data, epochs=1, batch_size=32, resolution=16, seed=0,
                min_feature=1, callbacks=[Record()])
print(json.dumps({"losses": losses, "val_loss": r.val_loss, "setup": r.setup}))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_follows_one_device():
    runs = {}
    for name in ("one_device", "mirrored"):
        p = subprocess.run([sys.executable, "-c", _LOSSES, name, TINY], capture_output=True, text=True,
                           timeout=300, env=_env(), cwd=ROOT)
        assert p.returncode == 0, p.stderr[-3000:]
        runs[name] = json.loads(p.stdout.strip().splitlines()[-1])
    one, mirrored = runs["one_device"], runs["mirrored"]
    assert mirrored["setup"]["replicas"] == 2 and mirrored["setup"]["strategy"] == "mirrored"
    assert one["setup"]["replicas"] == 1
    assert len(one["losses"]) == len(mirrored["losses"]) == 20  # same global batch: 640 / 32 steps
    assert mirrored["losses"][-1] == pytest.approx(one["losses"][-1], abs=1e-3)
    assert mirrored["val_loss"] == pytest.approx(one["val_loss"], abs=1e-2)


# ------------------------------------------------------------------------------- multi_worker

def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_multi_worker_two_local_processes(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = _env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        cmd = [*ACCELNAS, "train", TINY, "--params", SMOKE, "--out", str(tmp_path / "out"), "--json",
               "--epochs", "2", "--images", "256", "--set", "train.strategy=multi_worker"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env, cwd=ROOT))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=400))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert all(r["strategy"] == "multi_worker" and r["workers"] == 2 and r["replicas"] == 2 for r in results)
    written = json.loads((tmp_path / "out" / "result.json").read_text())  # one result, the chief's
    assert written["epochs_done"] == 2 and written["test_accuracy"] is not None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoint", "model.keras", "result.json"]


# ------------------------------------------------------------------------------ accelnas train

@pytest.mark.slow
def test_train_resumes_after_a_kill(tmp_path):
    out = tmp_path / "run"
    cmd = [*ACCELNAS, "train", TINY, "--params", SMOKE, "--out", str(out), "--json", "--epochs", "4",
           "--images", "512"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
                         cwd=ROOT, start_new_session=True)
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.2)
    assert p.poll() is None, "the training ended before it could be killed: " + p.stderr.read()[-2000:]
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done_before = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done_before < 4 and not (out / "result.json").exists()
    again = _train(out, "--epochs", "4", "--images", "512")
    assert again.returncode == 0, again.stderr[-3000:]
    r = json.loads(again.stdout.strip().splitlines()[-1])
    assert r["resumed_from"] == done_before and r["epochs_done"] == 4
    assert [h["epoch"] for h in r["history"]] == list(range(done_before + 1, 5))
    lrs = [h["learning_rate"] for h in r["history"]]  # the schedule went on where it stopped
    assert lrs == sorted(lrs, reverse=True) and (len(lrs) == 1 or lrs[0] > lrs[-1])
    assert json.loads((out / "result.json").read_text())["resumed_from"] == done_before


@pytest.mark.slow
def test_train_refuses_another_architectures_checkpoint_and_bfloat16_runs(tmp_path):
    out = tmp_path / "run"
    first = _train(out, "--epochs", "1", "--images", "128", "--set", "train.precision=mixed_bfloat16")
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads(first.stdout.strip().splitlines()[-1])
    assert r["precision"] == "mixed_bfloat16" and 0.0 <= r["test_accuracy"] <= 1.0
    before = sorted(f.name for f in (out / "checkpoint").iterdir())
    other = subprocess.run([*ACCELNAS, "train", "mobilenet_v2", "--params", SMOKE, "--out", str(out),
                            "--epochs", "1", "--images", "128"], capture_output=True, text=True,
                           timeout=300, env=_env(), cwd=ROOT)
    assert other.returncode == 2
    msg = other.stderr.strip().splitlines()[-1]
    assert "checkpoint of another training" in msg and "another --out" in msg and str(out) in msg
    assert sorted(f.name for f in (out / "checkpoint").iterdir()) == before  # nothing lost


def test_train_bad_model_and_missing_run(tmp_path):
    p = subprocess.run([*ACCELNAS, "train", "not_a_model", "--params", SMOKE, "--outputs", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert p.returncode == 2 and "not a zoo name" in p.stderr
    p = subprocess.run([*ACCELNAS, "train", "searched", "--params", SMOKE, "--outputs", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert p.returncode == 2 and "best_archs.json" in p.stderr and "run the search first" in p.stderr


# ------------------------------------------------------------------------------ the supernet

_SUPERNET_GRADS = """
import sys
import numpy as np
from accelnas.train import strategy as S
setup = S.configure({"strategy": sys.argv[1], "logical_cpus": 2}, log=None)
sys.path.insert(0, sys.argv[3])
from test_supernet import PROXY, small_space
from accelnas.search.supernet import Supernet
from accelnas.train.data import load_arrays
data = load_arrays("synthetic", subset=256, val_images=64, image_size=16, seed=0)
net = Supernet(small_space(), **PROXY, seed=0)
net.train(data, epochs=0)  # creates the gradient accumulators, takes no step
xb, yb = next(iter(data.pipeline("train", batch_size=64, resolution=16, seed=0, augment=False)))
enc = net.encode(net.space.sample(np.random.default_rng(1)))
step = net._fn("accumulate")
if setup.replicas == 1:  # each half on its own: what two replicas each compute
    loss = np.mean([float(step(xb[i:i + 32], yb[i:i + 32], enc["stages"], enc["act"])) for i in (0, 32)])
else:
    loss = float(net._run(step, xb, yb, enc["stages"], enc["act"]))
np.savez(sys.argv[2], loss=loss, replicas=setup.replicas, *[a.numpy() for a in net._acc])
"""


@pytest.mark.slow
def test_supernet_gradients_are_summed_over_mirrored_replicas(tmp_path):
    """Two replicas each take half the batch (BatchNorm over their half) and their gradients are
    summed into the accumulators: on one device, the two halves' gradients averaged."""
    import numpy as np

    got = {}
    for name in ("one_device", "mirrored"):
        out = tmp_path / f"{name}.npz"
        p = subprocess.run([sys.executable, "-c", _SUPERNET_GRADS, name, str(out), str(ROOT / "tests")],
                           capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
        assert p.returncode == 0, p.stderr[-3000:]
        got[name] = dict(np.load(out))
    one, mirrored = got["one_device"], got["mirrored"]
    assert int(one["replicas"]) == 1 and int(mirrored["replicas"]) == 2
    assert float(mirrored["loss"]) == pytest.approx(float(one["loss"]), rel=1e-5)
    grads = sorted(k for k in one if k.startswith("arr_"))
    assert len(grads) > 10 and any(np.abs(one[k]).max() > 0 for k in grads)
    for k in grads:  # one device summed both halves' full gradients; the replicas each 1/2 of theirs
        np.testing.assert_allclose(mirrored[k] * 2, one[k], rtol=1e-4, atol=1e-6, err_msg=k)
