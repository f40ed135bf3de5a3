"""Faults a user meets on the command line and in the data: each gives one message that names the
file or value and what to do, with the right exit code (issue 13; each case failed before)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelnas import cli
from accelnas.train import data

ROOT = Path(__file__).resolve().parents[1]
ACCELNAS = [sys.executable, "-m", "accelnas.cli"]


def run_cli(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: nothing set
    return subprocess.run([*ACCELNAS, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300, **kw)


def test_debug_keeps_the_exit_code(capsys):
    assert cli.main(["latency", "no_such_model"]) == 2
    assert cli.main(["--debug", "latency", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("accelnas: error: ")


def main_failing_with(monkeypatch, fail) -> int:
    """`cli.main` on ``accelnas zoo`` whose work is ``fail`` (a function of the parsed arguments)."""
    monkeypatch.setattr(cli, "_cmd_zoo", fail)  # the parser is built in main, from this name
    return cli.main(["zoo"])


def test_a_long_message_is_printed_whole(capsys, monkeypatch):
    def fail(args):
        raise FileNotFoundError("dataset 'cifar10' not found. Tried:\n  /a/cifar10.npz\n  /b/cifar10.npz\n"
                                "Set ACCELNAS_DATA_DIR to the folder holding cifar10.npz")
    assert main_failing_with(monkeypatch, fail) == 2
    err = capsys.readouterr().err
    assert "/a/cifar10.npz" in err and "/b/cifar10.npz" in err and "Set ACCELNAS_DATA_DIR" in err


def test_a_missing_optional_package_is_a_usage_error(capsys, monkeypatch):
    def fail(args):
        import tensorflow_datasets_that_is_not_installed  # noqa: F401
    assert main_failing_with(monkeypatch, fail) == 2
    assert "pip install tensorflow_datasets_that_is_not_installed" in capsys.readouterr().err


def test_any_other_failure_is_one_line_with_exit_1(capsys, monkeypatch):
    def fail(args):
        raise RuntimeError("no admissible architecture")
    assert main_failing_with(monkeypatch, fail) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["accelnas: error: RuntimeError: no admissible architecture (run again with --debug "
                   "for the traceback)"]


def test_output_to_a_closed_pipe_ends_quietly():
    # more rows than a pipe buffer holds (64 KiB), so the writer meets the closed pipe whatever the timing
    p = subprocess.Popen([*ACCELNAS, "latency", *["mobilenet_v2"] * 3000, "--method", "apm"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == cli.EXIT_PIPE
    assert "BrokenPipeError" not in err and "Traceback" not in err, err


def test_tensorflow_start_up_lines_are_not_shown():
    p = run_cli("latency", "keras:MobileNetV2", "--method", "apm")
    assert p.returncode == 0, p.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard"):
        assert noise not in p.stderr, p.stderr
    assert p.stdout.startswith("keras:MobileNetV2 on coral (apm, 224 px)")


@pytest.mark.parametrize("res", ["100000", "4", "0", "-3"])
def test_impossible_resolution_is_refused(capsys, res):
    assert cli.main(["latency", "mobilenet_v2", "--resolution", res]) == 2
    assert "from 8 to 2048" in capsys.readouterr().err


def test_apm_on_a_model_that_partitions_says_why(capsys):
    assert cli.main(["latency", "mobilenet_v3_small", "--method", "apm", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out
    d = json.loads(out)
    assert d["latency_ms"] is None and "--method sim" in d["partition_reason"]
    assert cli.main(["latency", "mobilenet_v3_small", "--method", "apm"]) == 0
    out = capsys.readouterr().out
    assert "inf ms" not in out and "not deployable whole on coral" in out


@pytest.mark.parametrize("content", [os.urandom(2000), b"PK\x03\x04 not really a zip"])
def test_a_damaged_keras_file_is_not_called_missing(tmp_path, capsys, content):
    f = tmp_path / "model.keras"
    f.write_bytes(content)
    assert cli.main(["latency", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "damaged" in err and "not found" not in err.lower()


def test_a_garbage_npz_gets_no_pickle_advice(tmp_path):
    f = tmp_path / "cifar10.npz"
    f.write_bytes(os.urandom(5000))
    with pytest.raises(ValueError) as e:
        data.read_cifar10_npz(f)
    msg = str(e.value)
    assert str(f) in msg and "damaged" in msg and "allow_pickle" not in msg


def _image_folder(root: Path, classes: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, n in classes.items():
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_an_empty_class_folder_is_refused(tmp_path):
    root = _image_folder(tmp_path / "ds", {"cat": 3, "dog": 3})
    (root / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) \['empty'\] hold no image files"):
        data.load_arrays(f"folder:{root}", image_size=8)


def test_a_corrupt_image_is_named(tmp_path):
    root = _image_folder(tmp_path / "ds", {"cat": 3, "dog": 3})
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError) as e:
        data.load_arrays(f"folder:{root}", image_size=8)
    assert str(bad) in str(e.value) and "not a readable image" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
