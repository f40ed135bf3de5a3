"""A schema as data and its strict validator (a leaf: imports nothing from accelnas).

A schema is nested dicts whose leaves are `Key` (type, default, one-line doc, allowed values or
range). `validate` checks a parsed YAML mapping against it and fills in defaults; an unknown key, a
value of the wrong type or an impossible value raises `ParamsError` naming the file, the dotted key
(``proxy.epochs``), the bad value and what is allowed. The run params (`accelnas.params`) and the
accelerator files (`accelnas.latency.accelerator`) are both described this way. `frozen` turns a
validated mapping into typed, frozen sections (``p.proxy.epochs``) built from the same schema.
"""
from __future__ import annotations

import copy
import json
import dataclasses
import difflib
import math
import re
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import yaml


class ParamsError(ValueError):
    """An invalid params (or accelerator) file; the message names file, key, value and the fix.

    Attributes:
        source: the file (or ``<dict>``) the value came from.
        key: dotted key (``proxy.epochs``, ``search_space.stages[2].stride``); '' for the file.
    """

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key = str(source), key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
"""Default of a `Key` that must be given."""


@dataclass(frozen=True)
class Key:
    """One leaf of a schema.

    Attributes:
        type: ``int``, ``float`` (ints accepted, stored as float), ``str``, ``bool``, ``list`` or
            ``dict`` (a mapping with free string keys).
        default: filled in when the key is absent (validated like a given value); `REQUIRED`: none.
        doc: one line, with units.
        choices: allowed values (scalars, or the items of a list); or a function returning them
            (read at validation time, e.g. the block types registered now).
        min, max: inclusive bounds; gt: exclusive lower bound (numbers, or list/dict items).
        pattern: regular expression a string must match in full; hint: its human wording.
        item: spec of list items / mapping values: a `Key`, or a section (dict of Keys).
        min_len: minimum number of list items / mapping entries.
        unique: list items must be distinct.
    """

    type: type
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | Callable[[], tuple] | None = None

    def allowed(self) -> tuple | None:
        return self.choices() if callable(self.choices) else self.choices
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    pattern: str | None = None
    hint: str | None = None
    item: Any = None
    min_len: int = 0
    unique: bool = False


_TYPE_WORDS = {int: "integer", float: "number", str: "string", bool: "boolean", list: "list",
               dict: "mapping"}

# ---------------------------------------------------------------------------------------------
# generic validation

def _fmt(v: Any) -> str:
    return repr(v) if not isinstance(v, (list, dict)) else yaml.safe_dump(v, default_flow_style=True).strip()


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def describe(spec: Any) -> str:
    """What a spec allows, in words (used in error messages and `schema_rows`)."""
    if isinstance(spec, dict):
        return "mapping with keys " + ", ".join(spec)
    word = _TYPE_WORDS[spec.type]
    if spec.type in (list, dict):
        inner = describe(spec.item) if spec.item is not None else "anything"
        size = f"at least {spec.min_len} " if spec.min_len else ""
        what = "items" if spec.type is list else "values"
        return f"{word} of {size}{'distinct ' if spec.unique else ''}{what}: {inner}"
    if spec.choices is not None:
        return "one of " + ", ".join(str(c) for c in spec.allowed())
    if spec.hint:
        return spec.hint
    if spec.pattern:
        return f"{word} matching {spec.pattern}"
    bounds = []
    if spec.gt is not None:
        bounds.append(f"> {spec.gt:g}")
    if spec.min is not None:
        bounds.append(f">= {spec.min:g}")
    if spec.max is not None:
        bounds.append(f"<= {spec.max:g}")
    return f"{word} {' and '.join(bounds)}".strip()


def _type_ok(value: Any, typ: type) -> Any:
    """The value converted to ``typ``, or a ``_BAD`` marker."""
    if typ is bool:
        return value if isinstance(value, bool) else _BAD
    if isinstance(value, bool):
        return _BAD
    if typ is int:
        return value if isinstance(value, int) else _BAD
    if typ is float:
        return float(value) if isinstance(value, (int, float)) else _BAD
    if typ is list:
        return list(value) if isinstance(value, (list, tuple)) else _BAD
    if typ is dict:
        return value if isinstance(value, Mapping) else _BAD
    return value if isinstance(value, typ) else _BAD


_BAD = object()


def validate(data: Any, spec: Any, source: str = "<dict>", key: str = "") -> Any:
    """Check ``data`` against ``spec`` (a section dict or a `Key`); return it with defaults filled.

    Raises:
        ParamsError: naming ``source``, the dotted key, the bad value and what is allowed.
    """
    if isinstance(spec, dict):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ParamsError(source, key, f"expected a mapping with keys {', '.join(spec)}, "
                                           f"got {_fmt(data)}")
        for k in data:
            if k not in spec:
                sub = f"{key}.{k}" if key else str(k)
                raise ParamsError(source, sub, f"unknown key; {_suggest(k, spec)}"
                                               f"allowed keys: {', '.join(spec)}")
        out = {}
        for k, sub_spec in spec.items():
            sub = f"{key}.{k}" if key else k
            if k in data:
                value = data[k]
            elif isinstance(sub_spec, dict):
                value = {}
            elif sub_spec.default is REQUIRED:
                raise ParamsError(source, sub, f"missing; add it ({sub_spec.doc}; "
                                               f"{describe(sub_spec)})")
            else:
                value = copy.deepcopy(sub_spec.default)
            out[k] = validate(value, sub_spec, source, sub)
        return out

    value = _type_ok(data, spec.type)
    if value is _BAD:
        hint = ""
        if spec.type is float and isinstance(data, str) and re.fullmatch(r"[-+]?\d+e[-+]?\d+", data):
            hint = " (YAML reads 1e-3 as text: write 1.0e-3)"
        raise ParamsError(source, key, f"got {_fmt(data)} ({type(data).__name__}), expected "
                                       f"{_TYPE_WORDS[spec.type]}{hint}; allowed: {describe(spec)}")
    if spec.type is list:
        if len(value) < spec.min_len:
            raise ParamsError(source, key, f"got {_fmt(data)}: needs at least {spec.min_len} item(s); "
                                           f"allowed: {describe(spec)}")
        if spec.item is not None:
            value = [validate(v, spec.item, source, f"{key}[{i}]") for i, v in enumerate(value)]
        if spec.unique:
            seen = []
            for v in value:
                if v in seen:
                    raise ParamsError(source, key, f"got {_fmt(data)}: {_fmt(v)} is repeated; "
                                                   f"allowed: {describe(spec)}")
                seen.append(v)
        return value
    if spec.type is dict:
        if len(value) < spec.min_len:
            raise ParamsError(source, key, f"got {_fmt(data)}: needs at least {spec.min_len} "
                                           f"entr{'y' if spec.min_len == 1 else 'ies'}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParamsError(source, f"{key}.{k}", f"keys must be strings, got {k!r}")
            out[k] = validate(v, spec.item, source, f"{key}.{k}") if spec.item is not None else v
        return out
    bad = None
    if spec.type is float and not math.isfinite(value):
        bad = "not a finite number"
    elif spec.choices is not None and value not in spec.allowed():
        bad = _suggest(value, spec.allowed()).rstrip() if isinstance(value, str) else ""
    elif spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        bad = ""
    elif ((spec.gt is not None and not value > spec.gt) or (spec.min is not None and value < spec.min)
          or (spec.max is not None and value > spec.max)):
        bad = "out of range"
    if bad is not None:
        raise ParamsError(source, key, f"got {_fmt(data)}{'; ' + bad if bad else ''}; "
                                       f"allowed: {describe(spec)}")
    return value


def schema_rows(spec: dict, prefix: str = "") -> list[dict]:
    """The schema as table rows: key (dotted), type, default, allowed, doc (for docs and notebooks)."""
    rows = []
    for k, sub in spec.items():
        name = f"{prefix}{k}"
        if isinstance(sub, dict):
            rows += schema_rows(sub, name + ".")
        else:
            rows.append({"key": name, "type": _TYPE_WORDS[sub.type], "default": sub.default,
                         "allowed": describe(sub), "doc": sub.doc})
    return rows



# ---------------------------------------------------------------------------------------------
# typed, frozen views

_SECTIONS: dict[tuple, type] = {}


def _section_class(spec: dict, name: str) -> type:
    """A frozen dataclass with one typed field per key of a section (cached per schema)."""
    key = (name, id(spec))
    if key not in _SECTIONS:
        fields = [(k, _annotation(sub), dataclasses.field()) for k, sub in spec.items()]
        cls = dataclasses.make_dataclass(name, fields, frozen=True)
        cls.to_dict = lambda self: thaw(self)
        cls.__doc__ = f"Frozen {name} section: " + ", ".join(spec)
        _SECTIONS[key] = cls
    return _SECTIONS[key]


def _annotation(sub) -> Any:
    if isinstance(sub, dict):
        return "section"
    return {list: tuple, dict: Mapping}.get(sub.type, sub.type)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[_\W]+", name) if part) or "Section"


def frozen(data: Any, spec: Any, name: str = "Params") -> Any:
    """A validated mapping as typed, frozen sections: attribute access (``p.proxy.epochs``), lists
    as tuples, free mappings as read-only mappings. ``thaw`` gives the plain dicts back."""
    if isinstance(spec, dict):
        cls = _section_class(spec, _camel(name))
        return cls(**{k: frozen(data[k], sub, k) for k, sub in spec.items()})
    if spec.type is list:
        item = spec.item if spec.item is not None else Key(object)
        return tuple(frozen(v, item, name.rstrip("s")) if isinstance(item, dict) or item.type in (list, dict) else v
                     for v in data)
    if spec.type is dict:
        item = spec.item
        return types.MappingProxyType({k: frozen(v, item, k) if isinstance(item, dict) else v
                                       for k, v in data.items()})
    return data


def thaw(value: Any) -> Any:
    """Plain nested dicts and lists from a `frozen` view (what the library functions take)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: thaw(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return copy.deepcopy(value)


# ---------------------------------------------------------------------------------------------
# differences between two params mappings (a run folder or search made with other params)

_UNSET = object()


def param_changes(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs between two params
    mappings, in ``old``'s key order (a missing key is `_UNSET`; lists compare whole)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = [*old, *(k for k in new if k not in old)]
        return [change for k in keys
                for change in param_changes(old.get(k, _UNSET), new.get(k, _UNSET), f"{prefix}{k}.")]
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def describe_changes(changes: Sequence[tuple[str, Any, Any]], limit: int = 5) -> str:
    """``"seed: 0 -> 7; proxy.epochs: 1 -> 2 and 3 more"`` (the first ``limit`` changes)."""
    def short(v: Any) -> str:
        text = "(unset)" if v is _UNSET else v if isinstance(v, str) else json.dumps(v, default=str)
        return text if len(text) <= 40 else text[:37] + "..."

    shown = "; ".join(f"{k}: {short(a)} -> {short(b)}" for k, a, b in changes[:limit])
    return shown + (f" and {len(changes) - limit} more" if len(changes) > limit else "")
