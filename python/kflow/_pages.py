"""A page of any listing (the namespace's objects, Kubeflow Pipelines, the Model Registry),
and the argument checks the listing modules share."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ._options import _fail


class Page(List[Dict[str, Any]]):
    """The rows of one page (a list of dicts). `next` is None on the last page, else what to
    pass as `cursor=` for the next one; `total` is the whole listing's length when the source
    says (Pipelines on every page, Kubernetes listings on their first page; the Model Registry
    does not)."""

    next: Optional[str]
    total: Optional[int]

    def __init__(self, items: List[Dict[str, Any]], next: Optional[str] = None, total: Optional[int] = None):
        super().__init__(items)
        self.next = next
        self.total = total

    @classmethod
    def _from_json(cls, payload: str) -> "Page":
        data = json.loads(payload)
        return cls(data["items"], data.get("next"), data.get("total"))

    def __repr__(self) -> str:
        more = f", next={self.next!r}" if self.next else ""
        return f"Page({list.__repr__(self)}{more})"


def _optional_text(name: str, value: Any) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value


def _limit(value: Any) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _fail("limit", value, "a whole number of rows, at least 1")
    return value


def _cursor(value: Any) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise _fail("cursor", value, "the `next` of the page before (str)")
    return value
