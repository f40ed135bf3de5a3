"""``accelnas latency`` with many models, accelerators and methods in one call (zoo and
NAS-Bench-201 models with sim/apm: no TensorFlow)."""
from __future__ import annotations

import csv
import json

import pytest

from accelnas import cli
from accelnas.latency import estimate

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
NO_PATH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"   # parses, but nothing reaches the output


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("accelnas: error: ")
    return err[0]


def test_models_hardware_and_methods_give_one_row_each(capsys):
    argv = ["latency", "mobilenet_v2", "efficientnet_lite0", "nb201:" + CELL,
            "--hardware", "coral,pixel4", "--method", "sim", "--method", "apm", "--json"]
    assert cli.main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["hardware"], r["method"]) for r in rows[:4]] == [
        ("mobilenet_v2", "coral", "sim"), ("mobilenet_v2", "coral", "apm"),
        ("mobilenet_v2", "pixel4", "sim"), ("mobilenet_v2", "pixel4", "apm")]
    assert len(rows) == 3 * 2 * 2 and not any(r["error"] for r in rows)
    nb = [r for r in rows if r["model"] == "nb201:" + CELL and r["hardware"] == "pixel4"
          and r["method"] == "sim"]
    assert nb[0]["resolution"] == 32
    assert nb[0]["latency_ms"] == pytest.approx(estimate("nb201:" + CELL, "pixel4", "sim").latency_ms)
    assert list(rows[0]) == [*cli.LATENCY_COLUMNS, "error"]


def test_table_and_bare_cell_string(capsys):
    assert cli.main(["latency", "mobilenet_v2", CELL, "--method", "apm"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:8] == list(cli.LATENCY_COLUMNS) and len(lines) == 3
    assert lines[2].startswith("nb201:" + CELL) and "error" not in lines[0]


def test_csv_with_arch_column_carries_other_columns(tmp_path, capsys):
    models = tmp_path / "family.csv"
    models.write_text(f"arch,accuracy,resolution\n{CELL},93.76,\n{CELL},0070,64\n")
    out = tmp_path / "sub" / "rows.csv"
    assert cli.main(["latency", str(models), "--method", "apm", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 2 rows to {out}"
    rows = read_csv(out)
    assert [r["model"] for r in rows] == ["nb201:" + CELL] * 2
    assert [r["accuracy"] for r in rows] == ["93.76", "0070"]       # unchanged text
    assert [r["resolution"] for r in rows] == ["32", "64"]
    assert float(rows[1]["latency_ms"]) == pytest.approx(
        estimate("nb201:" + CELL, "coral", "apm", resolution=64).latency_ms)
    assert list(rows[0]) == [*cli.LATENCY_COLUMNS, "accuracy", "error"]
    assert not list(tmp_path.glob("sub/.*.tmp"))


def test_out_json_writes_the_rows(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert cli.main(["latency", "mobilenet_v2", "--hardware", "coral", "--hardware", "pixel4",
                     "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [r["hardware"] for r in rows] == ["coral", "pixel4"]


def test_apm_partitioned_graph_has_no_latency_but_a_reason(tmp_path):
    out = tmp_path / "rows.csv"
    assert cli.main(["latency", "mobilenet_v3_small", "mobilenet_v2", "--method", "apm",
                     "--out", str(out)]) == 0
    v3, v2 = read_csv(out)
    assert v3["latency_ms"] == "" and v3["partition_reason"] == (
        "not deployable whole on coral (an op it cannot run sends the rest to the CPU); use --method sim "
        "to see where it partitions and what that costs")
    assert float(v2["latency_ms"]) > 0 and v2["partition_reason"] == ""


def test_bad_models_get_an_error_row_and_exit_2(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    argv = ["latency", "mobilenet_v2", "no_such_model", "nb201:" + NO_PATH, "nb201:" + CELL,
            "--method", "sim,apm", "--out", str(out)]
    assert cli.main(argv) == 2
    assert "4 of 8 rows failed" in error_line(capsys)
    rows = read_csv(out)
    assert [r["model"] for r in rows[::2]] == ["mobilenet_v2", "no_such_model", "nb201:" + NO_PATH,
                                               "nb201:" + CELL]
    errors = {r["model"]: r["error"] for r in rows}
    assert "unknown model 'no_such_model'" in errors["no_such_model"]
    assert errors["nb201:" + NO_PATH] and "\n" not in errors["nb201:" + NO_PATH]
    assert errors["mobilenet_v2"] == errors["nb201:" + CELL] == ""
    assert all(float(r["latency_ms"]) > 0 for r in rows if not r["error"])


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist: give a .csv file with a 'model' column"),
    ("name,accuracy\nmobilenet_v2,0.7\n", "no 'model' or 'arch' column (columns: name, accuracy)"),
    ("model,resolution\nmobilenet_v2,-3\n", "line 2: resolution must be an integer from 8 to 2048"),
])
def test_bad_model_list_is_a_usage_error(tmp_path, capsys, content, expected):
    models = tmp_path / "models.csv"
    if content is not None:
        models.write_text(content)
    assert cli.main(["latency", str(models), "mobilenet_v2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and expected in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, expected", [
    (["latency", "mobilenet_v2", "--method", "sim,fast"], "unknown --method 'fast'"),
    (["latency", "mobilenet_v2", "--out", "rows.txt"], "give a .csv or .json file"),
    (["latency", "mobilenet_v2", "resnet50", "--ops"], "--ops prints one model's breakdown"),
])
def test_bad_options_are_usage_errors(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in error_line(capsys)


def test_one_model_keeps_the_single_report(capsys):
    assert cli.main(["latency", "mobilenet_v2", "--method", "apm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    r = estimate("mobilenet_v2", "coral", "apm")
    assert lines[0] == f"mobilenet_v2 on coral (apm, 224 px): {r.latency_ms:.2f} ms"
    assert lines[1] == f"  MACs {r.macs / 1e6:.1f} M, params {r.params / 1e6:.2f} M"
