"""The real Edge TPU compiler, when it is installed (``edgetpu_compiler`` on PATH).

The only place that runs it; `accelnas.latency.compat.edgetpu_compat` takes its mapped / CPU
verdict when it is there. It is not installed on the development machines, so this path is
untested here.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def compiler_path() -> str | None:
    """``edgetpu_compiler`` on PATH, or None."""
    return shutil.which("edgetpu_compiler")


def run_compiler(compiler: str, data: bytes) -> tuple[dict, str]:
    """Run ``edgetpu_compiler -s`` on the model; the log's Edge TPU / CPU op counts.

    Only used when the compiler is installed (it is not on the development machines). Parses the
    log's "Number of operations that will run on Edge TPU: N" / "... on CPU: M" lines.
    """
    with tempfile.TemporaryDirectory(prefix="accelnas_edgetpu_") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        proc = subprocess.run([compiler, "-s", "-o", tmp, str(src)], capture_output=True,
                              text=True, timeout=600)
        log = proc.stdout + proc.stderr
        log_file = Path(tmp) / "model_edgetpu.log"
        if log_file.is_file():
            log += "\n" + log_file.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"edgetpu_compiler failed (exit {proc.returncode}):\n{log[-4000:]}")
    counts = {}
    for key, pattern in (("edgetpu_ops", r"will run on Edge TPU:\s*(\d+)"),
                         ("cpu_ops", r"will run on CPU:\s*(\d+)")):
        m = re.search(pattern, log)
        counts[key] = int(m.group(1)) if m else None
    return counts, log
