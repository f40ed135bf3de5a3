"""The run contract (`accelnas.run`): artifacts, who reads and writes them, typed frozen params."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from accelnas import params as P
from accelnas.run import ARTIFACTS, NOTEBOOKS, Run, inputs_of, open_run, outputs_of

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"


def test_every_artifact_has_a_writer_and_known_notebooks():
    for a in ARTIFACTS.values():
        assert a.writers and a.doc
        assert set(a.writers + a.readers) <= set(NOTEBOOKS) | {"runner"}
    # what one notebook writes, a later one reads (except the report's end products)
    unread = {a.name for a in ARTIFACTS.values() if not a.readers}
    assert unread == {"samples", "apm_vs_sim", "search", "scaling_grid", "comparison",
                      "dominance", "models", "executed", "manifest", "report"}
    for a in ARTIFACTS.values():
        assert all(r >= min(a.writers) for r in a.readers), f"{a.name} is read before it is written"
    assert [a.name for a in inputs_of("03")] == ["space", "trained"]
    assert {a.name for a in outputs_of("02")} == {"latency_validation", "latency_models", "apm_vs_sim"}


def test_notebooks_open_their_run_with_one_call_and_use_the_contract():
    """Every notebook's setup cell calls open_run with its own number; no notebook names a run
    file by hand (they go through run.read / run.write / run.path)."""
    files = {a.path for a in ARTIFACTS.values() if not a.is_dir}
    for number, name in NOTEBOOKS.items():
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        setup = "\n".join(code[1:2])
        assert f'open_run(params_file, run_dir, notebook="{number}"' in setup, name
        body = "\n".join(code[1:])
        assert "run_dir /" not in body and "P.load(" not in body, name
        for f in files:
            assert not re.search(rf"[\"']{re.escape(f)}[\"']", body), f"{name} names {f} by hand"
        assert not re.search(r"params\[\"", body), f"{name} looks params up by string"


@pytest.fixture
def run03(tmp_path) -> Run:
    return open_run(SMOKE, tmp_path / "r", notebook="03", overrides={"search.trials": 2})


def test_open_run_validates_and_types_params(run03):
    assert run03.params["search"]["trials"] == 2 and run03.p.search.trials == 2
    assert run03.p.proxy.epochs == run03.params["proxy"]["epochs"]
    assert isinstance(run03.p.accelerators, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run03.p.proxy.epochs = 5
    with pytest.raises(TypeError):
        run03.p.search.target_latency_ms["coral"] = 1.0
    assert P.thaw(run03.p) == run03.params
    with pytest.raises(P.ParamsError, match="proxy.epochs"):
        open_run(SMOKE, run03.dir, notebook="03", overrides={"proxy.epochs": 0})


def test_reads_and_writes_follow_the_declarations(run03):
    with pytest.raises(FileNotFoundError, match="01_search_space"):
        run03.read("space")
    assert run03.read_optional("space") is None
    with pytest.raises(PermissionError, match="does not declare writing"):
        run03.write("space", {})
    with pytest.raises(PermissionError, match="does not declare reading"):
        run03.read("scaled")
    with pytest.raises(KeyError, match="no artifact"):
        run03.read("nope")
    run03.write("best_archs", {"by_reward": []})
    assert run03.read("best_archs") == {"by_reward": []}
    frame = pd.DataFrame({"a": [1, 2]})
    run03.write("trials", frame)
    pd.testing.assert_frame_equal(run03.read("trials"), frame)
    table = run03.describe()
    assert list(table.file) == ["space.json", "search/", "trials.parquet", "best_archs.json", "finalists.parquet",
                                "proxy_fidelity.parquet", "trained.parquet", "weights/"]
    assert list(table.present) == [False, False, True, True, False, False, False, False]


def test_folder_artifacts_and_space_fallback(tmp_path):
    r1 = open_run(SMOKE, tmp_path, notebook="01")
    r2 = open_run(SMOKE, tmp_path, notebook="02")
    assert r2.space() == r1.space()  # no space.json yet: built from params
    small = dataclasses.replace(r1.space(), kernels=(3,))
    r1.write("space", small.to_dict())
    assert r2.space() == small  # notebook 02 reads 01's file
    r2.write("latency_models", {"accelerator": "coral"}, file="apm_coral.json")
    with pytest.raises(ValueError, match="folder"):
        r2.write("latency_models", {})
    r5 = open_run(SMOKE, tmp_path, notebook="05")
    assert r5.read_folder("latency_models") == {"apm_coral": {"accelerator": "coral"}}
    with pytest.raises(ValueError, match="unknown notebook"):
        Run(tmp_path, r1.params, notebook="07")
