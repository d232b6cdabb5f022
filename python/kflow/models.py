"""The Kubeflow Model Registry as the signed-in user (`kflow.login()` or `kflow login`).

    import kflow
    kflow.models.register("mnist", version="v1", uri="s3://models/mnist/1", format="onnx",
                          metadata={"accuracy": 0.93})
    kflow.models.versions("mnist")

Listings return a `Page`: pass its `next` back as `cursor=` for the next one.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from . import _native
from ._options import _fail
from ._pages import Page, _cursor, _limit, _optional_text


def list(limit: Optional[int] = None, cursor: Optional[str] = None) -> Page:
    """The registered models (dicts: id, name, description, owner, state, created_at, metadata)."""
    return Page._from_json(_native.models_list_json(_limit(limit), _cursor(cursor)))


def versions(model: str, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page:
    """The versions of a registered model (by name)."""
    if not isinstance(model, str):
        raise _fail("model", model, "the registered model's name")
    return Page._from_json(_native.models_versions_json(model, _limit(limit), _cursor(cursor)))


def artifacts(model: str, version: str, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page:
    """The artifacts of a model version (model and version by name): uri, format_name, …"""
    for argument, value in (("model", model), ("version", version)):
        if not isinstance(value, str):
            raise _fail(argument, value, "a name (a string)")
    return Page._from_json(_native.models_artifacts_json(model, version, _limit(limit),
                                              _cursor(cursor)))


def _metadata(value: Any) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("metadata", value, 'a dict such as {"accuracy": 0.93, "framework": "pytorch"}')
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int, float, bool)):
            raise _fail(f"metadata[{key!r}]", item, "a string, number or boolean")
    return dict(value)


def register(model: str, *, version: str, uri: str, format: str, format_version: Optional[str] = None,
             description: Optional[str] = None, author: Optional[str] = None,
             metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Registers `version` of `model` (created when missing) with one model artifact at `uri`
    in `format` (onnx, pytorch, …). `metadata` values are strings, numbers or booleans. Returns
    `{"model": {...}, "model_created": bool, "version": {...}, "artifact": {...}}`; a version
    name that is taken raises `ConflictError`."""
    for argument, value in (("model", model), ("version", version), ("uri", uri), ("format", format)):
        if not isinstance(value, str):
            raise _fail(argument, value, "a string")
    request = {"model": model, "version": version, "uri": uri, "format_name": format,
               "format_version": _optional_text("format_version", format_version),
               "description": _optional_text("description", description), "author": _optional_text("author", author),
               "metadata": _metadata(metadata)}
    return json.loads(_native.models_register_json(json.dumps(request)))


__all__ = ["artifacts", "list", "register", "versions"]
