"""The Cloud Logging half of tests/runners/gcp_fake.py: stored entries and `POST /v2/entries:list` over them.

Only what the runner sends is understood: `resourceNames` (projects), `filter` made of `field OP "value"` clauses
joined by AND or whitespace (fields such as logName, severity, timestamp, labels.KEY; operators = : > >= < <=),
`orderBy` ("timestamp asc"/"timestamp desc"), `pageSize` and `pageToken`. Any other filter syntax is a 400, so a
runner change that the fake would misread fails loudly. Entries are listable as soon as they are appended: real
Cloud Logging can list an entry seconds after newer ones (ingestion delay), which this fake does not imitate.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from typing import Any

CLAUSE = re.compile(r'\s*(?:AND\s+)?([\w.]+)\s*(>=|<=|=|>|<|:)\s*("(?:[^"\\]|\\.)*"|[^\s"]+)\s*')


def now_rfc3339(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rest_error(code: int, status: str, message: str) -> dict[str, Any]:
    """Google's JSON error body: the clients map `code` to their exception classes (404 -> NotFound ...)."""
    return {"error": {"code": code, "status": status, "message": message}}


class FakeLogStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.list_calls = 0

    def append(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries.append(entry)

    def list(self, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            clauses = parse_filter(body.get("filter", ""))
        except ValueError as exc:
            return 400, rest_error(400, "INVALID_ARGUMENT", str(exc))
        projects = {name.split("/")[1] for name in body.get("resourceNames", []) if name.startswith("projects/")}
        with self.lock:
            self.list_calls += 1
            found = [e for e in self.entries if e["logName"].split("/")[1] in projects
                     and all(matches(e, clause) for clause in clauses)]
        found.sort(key=lambda e: e["timestamp"], reverse=body.get("orderBy", "").endswith("desc"))  # stable
        start = int(body.get("pageToken") or 0)
        size = int(body.get("pageSize") or 1000)
        page: dict[str, Any] = {"entries": found[start:start + size]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return 200, page


def parse_filter(text: str) -> list[tuple[str, str, str]]:
    clauses, position = [], 0
    while position < len(text):
        match = CLAUSE.match(text, position)
        if match is None:
            raise ValueError(f"unsupported filter syntax at {text[position:]!r}")
        field, op, value = match.groups()
        clauses.append((field, op, json.loads(value) if value.startswith('"') else value))
        position = match.end()
    return clauses


def matches(entry: dict[str, Any], clause: tuple[str, str, str]) -> bool:
    field, op, expected = clause
    value: Any = entry
    for part in ["labels", field[7:]] if field.startswith("labels.") else field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return False
    if field == "timestamp":  # normalised to UTC with fixed width, RFC 3339 stamps compare as text
        value, expected = _utc(value), _utc(expected)
    actual = str(value)
    return {"=": actual == expected, ":": expected in actual, ">=": actual >= expected, ">": actual > expected,
            "<=": actual <= expected, "<": actual < expected}[op]


def _utc(stamp: str) -> str:
    parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
