"""Packaging: environment.yml agrees with pyproject.toml; the console script and the import work
without TensorFlow."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def normalized(specs) -> set[tuple]:
    """Requirement strings -> {(canonical name, extras, specifier, marker)}."""
    out = set()
    for text in specs:
        req = Requirement(text)
        out.add((canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier),
                 str(req.marker or "")))
    return out


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def conda_pip_section() -> list[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, "environment.yml needs exactly one pip: section"
    return pips[0]


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "accelnas"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "pip" in conda

    pip = conda_pip_section()
    editable = [line for line in pip if line.startswith("-e")]
    assert len(editable) == 1 and editable[0].split()[1].startswith("."), editable
    requirements = [line for line in pip if not line.startswith("-")]
    assert len(requirements) == len(set(requirements)), "duplicate pip entries"

    declared = pyproject()["project"]["dependencies"]
    assert normalized(requirements) == normalized(declared), (
        f"only in environment.yml: {normalized(requirements) - normalized(declared)}; "
        f"only in pyproject.toml: {normalized(declared) - normalized(requirements)}")


def test_console_script_help():
    assert pyproject()["project"]["scripts"]["accelnas"] == "accelnas.cli:main"
    script = shutil.which("accelnas", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("accelnas console script not installed next to this Python (pip install -e .)")
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: accelnas" in proc.stdout
    for command in ("run", "zoo"):
        assert command in proc.stdout


def test_import_does_not_import_tensorflow():
    code = ("import sys, accelnas, accelnas.cli, accelnas.runner\n"
            "accelnas.zoo.get('mobilenet_v2'); accelnas.graph; accelnas.decode_block\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'keras_tuner', 'papermill')"
            " if m in sys.modules)\n"
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at `import accelnas`: {proc.stdout.strip()}"


def test_public_api():
    import accelnas

    for name in ("BlockSpec", "ArchSpec", "make_divisible", "decode_block", "encode_block",
                 "decode_arch", "encode_arch", "scale", "zoo", "graph", "__version__"):
        assert hasattr(accelnas, name), name
    with pytest.raises(AttributeError):
        accelnas.not_a_thing  # noqa: B018


@pytest.mark.slow
def test_wheel_ships_the_accelerators_and_resources(tmp_path):
    """A wheel install finds the accelerator YAMLs, the published rows and the APM coefficients."""
    import zipfile

    src = tmp_path / "src"  # a copy: setuptools writes build/ next to the sources
    shutil.copytree(REPO / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    (wheel,) = tmp_path.glob("accelnas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"accelnas/resources/hardware/{y.name}" for y in (REPO / "lib/accelnas/resources/hardware").glob("*.yaml")}
    assert shipped and shipped <= names
    assert {"accelnas/resources/calibration.csv", "accelnas/resources/apm_coef.json"} <= names
