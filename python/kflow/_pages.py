"""A page of a listing from Kubeflow Pipelines or the Model Registry, and the argument checks
both modules share."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ._options import _fail


class Page(List[Dict[str, Any]]):
    """The items of one page (a list of dicts); `next_page_token` is None on the last page,
    else what to pass as `page_token=` for the next one. `total_size` is the whole list's
    length when the app says (Pipelines does, the Model Registry does not)."""

    next_page_token: Optional[str]
    total_size: Optional[int]

    def __init__(self, payload: str):
        data = json.loads(payload)
        super().__init__(data["items"])
        self.next_page_token = data.get("next_page_token")
        self.total_size = data.get("total_size")

    def __repr__(self) -> str:
        more = f", next_page_token={self.next_page_token!r}" if self.next_page_token else ""
        return f"Page({list.__repr__(self)}{more})"


def _optional_text(name: str, value: Any) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value


def _page_size(value: Any) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _fail("page_size", value, "a whole number of at least 1")
    return value
