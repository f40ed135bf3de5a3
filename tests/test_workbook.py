"""The whole workbook on params/smoke.yaml through papermill, in a temporary outputs folder."""
import json
from pathlib import Path

import pandas as pd
import pytest

from accelnas import runner
from accelnas.latency.apm import COEF_NAMES
from accelnas.space.arch import decode_arch
from accelnas.space.search_space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_workbook(tmp_path):
    run_dir = runner.run(ROOT / "params" / "smoke.yaml", notebooks_dir=ROOT / "notebooks",
                         outputs_root=tmp_path, log=lambda *a, **k: None)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert [nb["status"] for nb in manifest["notebooks"]] == ["ok"] * len(manifest["notebooks"])
    assert all(nb["wall_s"] > 0 for nb in manifest["notebooks"])
    space = SearchSpace.from_json((run_dir / "space.json").read_text())
    assert "swish" not in space.activations and space.se_ratios == (0,)
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == 50 and (samples.macs > 0).all()
    for text in samples.arch[:5]:
        arch = decode_arch(text)
        assert all((b.activation or arch.activation) != "swish" for b in arch.blocks)
    assert (run_dir / "executed" / "01_search_space.ipynb").exists()
    # notebook 02: the latency models
    assert (run_dir / "executed" / "02_latency_model.ipynb").exists()
    validation = pd.read_csv(run_dir / "latency_validation.csv")
    assert {"model", "hardware", "latency_ms", "sim_ms", "sim_error", "apm_ms", "apm_fit_ms"} <= set(validation.columns)
    assert set(validation.hardware) == {"coral", "pixel4"} and (validation.sim_error.abs() <= 0.25).all()
    for acc in ("coral", "pixel4"):
        model = json.loads((run_dir / "latency_models" / f"apm_{acc}.json").read_text())
        assert model["accelerator"] == acc and list(model["coef"]) == list(COEF_NAMES)
        assert model["accelerator_constants"]["name"] == acc
    avs = pd.read_parquet(run_dir / "apm_vs_sim.parquet")
    assert set(avs.split) == {"fit", "eval"} and (avs.sim_ms > 0).all()
