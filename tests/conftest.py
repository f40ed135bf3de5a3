"""Shared test setup: quiet TensorFlow, and the CIFAR-10 folder (`cifar_dir`).

CIFAR-10 comes from ``$ACCELNAS_DATA_DIR`` or, when unset, the project's shared folder beside the
checkout (``../shared/data``), as the library resolves it. Tests that need it take the `cifar_dir`
fixture and are skipped, saying how to enable them, when neither holds ``cifar10.npz``.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA_ENV = "ACCELNAS_DATA_DIR"


def data_dir() -> Path | None:
    """The folder holding cifar10.npz, or None."""
    env = os.environ.get(DATA_ENV)
    d = Path(env).expanduser().resolve() if env else (ROOT.parent / "shared" / "data").resolve()
    return d if (d / "cifar10.npz").is_file() else None


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    d = data_dir()
    if d is None:
        where = os.environ.get(DATA_ENV) or str(ROOT.parent / "shared" / "data")
        pytest.skip(f"no cifar10.npz in {where}: set {DATA_ENV} to a folder holding CIFAR-10's "
                    "cifar10.npz (see the README, Data) to run the CIFAR-10 tests")
    return d
