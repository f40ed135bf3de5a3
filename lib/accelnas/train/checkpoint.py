"""Checkpoints of one training, so that a killed training resumes where it stopped.

A checkpoint folder holds ``state.weights.h5`` (the model's and the optimizer's variables, the
optimizer's step counter included, so the learning-rate schedule goes on where it stopped) and
``state.json`` (what training it is, `identity`, and how many epochs are done). Both are written
after every epoch, each atomically (a temporary file renamed), the weights first: a kill at any
moment leaves the previous epoch's checkpoint or the new one, never a mix that `restore` would
take for the new one. Under ``multi_worker`` only the chief's files are kept (`epoch_checkpoint`).

`restore` refuses a checkpoint of another training (another architecture, budget or seed) with
a message that names the folder and what differs, so that a wrong ``--out`` never continues the
wrong network, and never deletes anything.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from accelnas.space.arch import ArchSpec

STATE = "state.json"
WEIGHTS = "state.weights.h5"


class CheckpointError(ValueError):
    """A checkpoint folder that holds another training, or a damaged one."""


def identity(arch: ArchSpec, **budget: Any) -> dict:
    """What makes two trainings the same: the trained architecture (not its name) and the budget."""
    return json.loads(json.dumps({"arch": arch.replace(name="model").encode(), **budget}, default=str))


def read_state(folder: str | os.PathLike) -> dict | None:
    """The folder's ``state.json`` (None when there is none).

    Raises:
        CheckpointError: the file is damaged or its weights are missing.
    """
    f = Path(folder) / STATE
    if not f.is_file():
        return None
    try:
        state = json.loads(f.read_text())
        epochs = int(state["epochs_done"])
        state["identity"]  # noqa: B018 - must be there
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise CheckpointError(f"{f}: damaged checkpoint ({type(e).__name__}: {e}); move the folder "
                              "aside to start this training again, or pass another --out") from None
    if epochs > 0 and not (Path(folder) / WEIGHTS).is_file():
        raise CheckpointError(f"{f} says {epochs} epochs are done but {WEIGHTS} is missing; move the "
                              "folder aside to start this training again, or pass another --out")
    return state


def restore(model, folder: str | os.PathLike, ident: dict) -> int:
    """Load the folder's checkpoint into a compiled ``model`` (optimizer built); returns the epochs
    it had done (0 when there is no checkpoint).

    Raises:
        CheckpointError: the checkpoint is of another training (names what differs) or damaged.
    """
    state = read_state(folder)
    if state is None:
        return 0
    old = state["identity"]
    diff = [k for k in sorted(set(old) | set(ident)) if old.get(k) != ident.get(k)]
    if diff:
        what = "; ".join(f"{k}: {old.get(k)!r} there, {ident.get(k)!r} here" for k in diff[:4])
        raise CheckpointError(f"{Path(folder)} holds the checkpoint of another training ({what}); "
                              "pass another --out, or move that folder aside to start again")
    try:
        model.load_weights(Path(folder) / WEIGHTS)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        raise CheckpointError(f"{Path(folder) / WEIGHTS}: cannot be loaded into this model "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                              "move the folder aside to start again") from None
    return int(state["epochs_done"])


def write(model, folder: str | os.PathLike, ident: dict, epochs_done: int) -> None:
    """Write the checkpoint after ``epochs_done`` epochs (weights, then the state; each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ("partial." + WEIGHTS)
    model.save_weights(tmp)
    os.replace(tmp, folder / WEIGHTS)
    tmp = folder / ("partial." + STATE)
    tmp.write_text(json.dumps({"identity": ident, "epochs_done": int(epochs_done)}, indent=1))
    os.replace(tmp, folder / STATE)


def epoch_checkpoint(folder: str | os.PathLike, ident: dict, write_files: bool = True):
    """A Keras callback that writes the checkpoint at the end of every epoch. ``write_files``
    False (a ``multi_worker`` worker other than the chief): it writes to a temporary folder and
    deletes it, since saving under ``MultiWorkerMirroredStrategy`` runs collective ops in which
    every worker must take part."""
    import keras

    class _EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if write_files:
                write(self.model, folder, ident, epoch + 1)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    write(self.model, tmp, ident, epoch + 1)

    return _EpochCheckpoint()
