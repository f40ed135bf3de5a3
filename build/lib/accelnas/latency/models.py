"""Model references -> something the estimators take: a zoo name, ``keras:<Application>``,
``nb201:<cell string>`` (a NAS-Bench-201 network, `accelnas.space.nb201`), a ``.keras`` / ``.tflite`` path, an `ArchSpec`, an `OpGraph` or a Keras model (`resolve`), and any of
them but a ``.tflite`` file as an op graph (`to_graph`)."""
from __future__ import annotations

from pathlib import Path

from accelnas.space.arch import ArchSpec
from accelnas.space import nb201
from accelnas.space.graph import OpGraph, from_arch


def resolve(model, resolution: int | None = None):
    """(label, ArchSpec | OpGraph | keras.Model | Path) for any accepted model reference."""
    if isinstance(model, (ArchSpec, OpGraph)):
        if isinstance(model, ArchSpec) and resolution:
            model = model.replace(resolution=int(resolution))
        return model.name, model
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith(nb201.PREFIX):
            g = nb201.nb201_graph(text, resolution=int(resolution or 32))
            return g.name, g
        if text.startswith("keras:"):
            import keras

            app = text.split(":", 1)[1]
            ctor = getattr(keras.applications, app, None)
            if ctor is None or not callable(ctor):
                raise ValueError(f"unknown keras application {app!r}; e.g. keras:ResNet50, keras:MobileNetV2, "
                                 "keras:DenseNet121 (any class in keras.applications)")
            kw = {"input_shape": (resolution, resolution, 3)} if resolution else {}
            return text, ctor(weights=None, classes=1000, **kw)
        path = Path(text)
        if path.suffix in (".keras", ".tflite"):
            if not path.exists():
                raise FileNotFoundError(f"model file {path} does not exist")
            if path.suffix == ".keras":
                from accelnas.latency.tflite import load_model

                return path.name, load_model(path)
            return path.name, path
        from accelnas.space import zoo

        if text not in zoo.names():
            raise ValueError(f"unknown model {text!r}: give a zoo name ({', '.join(zoo.names())}), "
                             "nb201:<NAS-Bench-201 cell string>, keras:<ApplicationName> (e.g. keras:ResNet50) or a .keras/.tflite path")
        return text, zoo.get(text, resolution=resolution)
    if hasattr(model, "count_params") and hasattr(model, "layers"):
        return model.name, model
    raise TypeError(f"cannot estimate the latency of a {type(model).__name__}; pass an ArchSpec, an "
                    "OpGraph, a Keras model, a zoo name, keras:<Application> or a .keras/.tflite path")


def to_graph(obj) -> OpGraph:
    if isinstance(obj, OpGraph):
        return obj
    if isinstance(obj, ArchSpec):
        return from_arch(obj)
    if isinstance(obj, Path):
        raise ValueError(f"{obj.name}: a .tflite file can only be measured (--method measure)")
    from accelnas.space.graph_keras import from_keras

    return from_keras(obj)
