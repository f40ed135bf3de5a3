"""The accelnas command line (no kernels: the runner is stubbed where it would run notebooks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelnas import cli, runner
from accelnas.space import graph, zoo


def test_zoo_json_is_one_object(capsys):
    assert cli.main(["zoo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in data["models"]}
    assert list(rows) == zoo.names()
    g = graph.from_arch(zoo.get("mobilenet_v2"))
    assert rows["mobilenet_v2"]["params"] == g.params and rows["mobilenet_v2"]["macs"] == g.macs


def test_zoo_table_and_resolution(capsys):
    assert cli.main(["zoo", "mobilenet_v2", "resnet50", "--resolution", "160"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[0] == "model" and len(lines) == 3
    assert lines[1].split()[:2] == ["mobilenet_v2", "160"]


def test_parse_set():
    assert cli.parse_set(["seed=3", "search.trials=10", "name=abc", "flag=true", "xs=[1, 2]"]) == {
        "seed": 3, "search.trials": 10, "name": "abc", "flag": True, "xs": [1, 2]}
    assert cli.parse_set(["a.b="]) == {"a.b": ""}
    with pytest.raises(ValueError, match="key=value"):
        cli.parse_set(["novalue"])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("accelnas: error: ")
    return err[0]


@pytest.mark.parametrize("argv, expected", [
    (["zoo", "no_such_model"], "unknown zoo model"),
    (["run", "no/such/params.yaml"], "params file not found"),
    (["run", "params.yaml", "--set", "oops"], "key=value"),
])
def test_user_errors_exit_2_with_one_line(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in one_error_line(capsys)


def test_run_passes_arguments_and_reports_failures(monkeypatch, capsys, tmp_path):
    calls = []

    def fake_run(params, **kwargs):
        calls.append((params, kwargs))
        raise runner.NotebookFailed("02_latency_model", tmp_path / "02_latency_model.ipynb",
                                    "ValueError", "boom", cell=4)

    monkeypatch.setattr(runner, "run", fake_run)
    assert cli.main(["run", "params/smoke.yaml", "--only", "01,02", "--set", "seed=5"]) == 1
    line = one_error_line(capsys)
    assert "02_latency_model" in line and "ValueError: boom" in line
    params, kwargs = calls[0]
    assert params == "params/smoke.yaml"
    assert kwargs["only"] == "01,02" and kwargs["overrides"] == {"seed": 5}
    assert kwargs["notebooks_dir"] == "notebooks" and kwargs["outputs_root"] == "outputs"

    class ParamsError(ValueError):
        pass

    def bad_params(params, **kwargs):
        raise ParamsError("params/x.yaml: unknown key 'sead' (allowed: seed, run_name)")

    monkeypatch.setattr(runner, "run", bad_params)
    assert cli.main(["run", "params/x.yaml"]) == 2
    assert "unknown key 'sead'" in one_error_line(capsys)
    # --debug adds the traceback and keeps the exit code
    assert cli.main(["--debug", "run", "params/x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ParamsError" in err and "accelnas: error: params/x.yaml" in err


def test_run_success_prints_run_dir(monkeypatch, capsys):
    monkeypatch.setattr(runner, "run", lambda params, **kw: Path("/x/outputs/smoke"))
    assert cli.main(["run", "params/smoke.yaml"]) == 0
    assert "/x/outputs/smoke" in capsys.readouterr().out


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
