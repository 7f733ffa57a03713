"""Search parameters as Kestra's API takes them: plain ones (`namespace`, `flowId`, `state`, `q`) and its filter
form `filters[FIELD][OPERATION]=VALUE` (what kestrapy sends). A filter Celestra cannot apply yet is refused with
400, never dropped: a search that silently ignored a filter would show more than was asked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

_FILTER = re.compile(r"^filters\[(\w+)\]\[(\w+)\]$")
_PLAIN = {"namespace", "flowId", "state", "q", "page", "size"}
_FIELDS = {"namespace": ("EQUALS", "PREFIX", "STARTS_WITH"), "flowId": ("EQUALS",), "state": ("EQUALS", "IN"),
           "q": ("EQUALS",)}


@dataclass
class Search:
    namespace: str | None = None
    flow_id: str | None = None
    states: list[str] = field(default_factory=list)
    text: str | None = None
    page: int = 1
    size: int = 25


def search(request: Request) -> Search:
    params, found = request.query_params, Search()
    for key, value in params.multi_items():
        matched = _FILTER.match(key)
        if matched is None:
            if key not in _PLAIN:
                raise HTTPException(400, f"search parameter {key} is not supported yet")
            continue
        name, operation = matched.groups()
        if operation not in _FIELDS.get(name, ()):
            raise HTTPException(400, f"filter {name} {operation} is not supported yet")
        _apply(found, name, value)
    for name in ("namespace", "flowId", "q"):
        if params.get(name):
            _apply(found, name, params[name])
    for value in params.getlist("state"):
        _apply(found, "state", value)
    try:
        found.page, found.size = int(params.get("page", 1)), int(params.get("size", 25))
    except ValueError:
        raise HTTPException(400, "page and size must be whole numbers") from None
    if found.page < 1 or not 1 <= found.size <= 1000:
        raise HTTPException(400, "page must be 1 or more, size between 1 and 1000")
    return found


def _apply(found: Search, name: str, value: str) -> None:
    if name == "namespace":
        found.namespace = value
    elif name == "flowId":
        found.flow_id = value
    elif name == "q":
        found.text = value
    else:
        found.states.extend(part.strip().upper() for part in value.split(",") if part.strip())


SearchQuery = Annotated[Search, Depends(search)]
