"""Turns the keyword arguments of `kflow.run` into the JSON the core reads, checking types
here so a wrong type gets a message about the argument, not about JSON."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from . import _native
from ._native import ValidationError

PathLike = Union[str, "os.PathLike[str]"]


def _fail(argument: str, value: Any, expected: str) -> ValidationError:
    message = f"invalid {argument}={value!r}: expected {expected}"
    event = _native.record_event("error", message)
    err = ValidationError(f"{message} [event {event}]")
    err.event_id = event  # type: ignore[attr-defined]
    err.problem = message  # type: ignore[attr-defined]
    err.fix = f"pass {argument}= as {expected}"  # type: ignore[attr-defined]
    return err


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(name, value, "a whole number, e.g. 1")
    return value


def _quantity(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(name, value, 'a quantity such as "2", "500m" or "16Gi"')
    return str(value)


def _strings(name: str, value: Any) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(name, value, 'a string or a list of strings, e.g. ["numpy", "torch>=2"]')


def _env(value: Any) -> Dict[str, str]:
    if not isinstance(value, Mapping):
        raise _fail("env", value, 'a dict such as {"LR": "0.1"}')
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, (dict, list, tuple, set)) or item is None:
            raise _fail(f"env[{key!r}]", item, "a string, number or boolean")
        out[key] = item if isinstance(item, str) else json.dumps(item) if isinstance(item, bool) else str(item)
    return out


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value


def _path(name: str, value: Any) -> str:
    try:
        path = os.fspath(value)
    except TypeError:
        raise _fail(name, value, "a path (str or pathlib.Path)") from None
    if not isinstance(path, str):
        raise _fail(name, value, "a path as str or pathlib.Path (for a bytes path, pass os.fsdecode(path))")
    return path


def to_json(script: Optional[PathLike] = None, **params: Any) -> str:
    opts: Dict[str, Any] = {}
    if script is not None:
        opts["script"] = _path("script", script)
    memory = params.pop("memory", None)
    mem = params.pop("mem", None)
    if memory is not None and mem is not None:
        raise _fail("mem", mem, "only one of mem= and memory=")
    params["memory"] = memory if memory is not None else mem
    for key, value in params.items():
        if value is None:
            continue
        if key in ("gpu", "workers"):
            opts[key] = _count(key, value)
        elif key in ("cpu", "memory", "pip_cache_size"):
            opts[key] = _quantity(key, value)
        elif key in ("pip", "apt", "args"):
            opts[key] = _strings(key, value)
        elif key == "env":
            opts[key] = _env(value)
        elif key in ("project_root", "requirements"):
            opts[key] = _path(key, value)
        elif key == "pip_cache":
            if not isinstance(value, bool):
                raise _fail(key, value, "True or False")
            opts[key] = value
        else:
            opts[key] = _text(key, value)
    return json.dumps(opts)
