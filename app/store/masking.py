"""Secret values masked before anything is stored: log lines, errors, outputs, labels, execution outputs.

A flow can turn a secret into text in many ways; the forms masked are the value itself, each of its lines, its
upper- and lower-case forms, its URL-quoted and JSON-escaped forms, and its base64 (standard and URL-safe) at any
alignment, so `{{ ('user:' ~ secret('PW')) | base64encode }}`, a Basic auth header, is caught as well as
`{{ secret('PW') | base64encode }}`. Masking is by substring: what a task computes from a secret beyond these forms
(a hash, a reversed string) is not recognised, and is the flow author's to keep out of outputs.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "********"
MIN_LINE = 4  # the lines of a multi-line secret are masked one by one from this length
# Derived forms (case, URL, JSON, base64) from this length only: those of a short secret are common text (`Prod`
# would mask every `prod` of a storage URI a later task reads), and a short base64 core appears in any payload.
MIN_DERIVED = 8


def _base64_cores(data: bytes) -> set[str]:
    """The part of base64(prefix + data + suffix) that depends on `data` alone, for each of the three alignments
    of `data` after an arbitrary prefix: the base64 of a secret embedded in a longer text contains one of them."""
    cores = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}  # the value encoded alone
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode().rstrip("=")
        first = -(-8 * shift // 6)  # the first character made of secret bits only
        last = 8 * (shift + len(data)) // 6  # past the last such character
        core = encoded[first:last]
        if len(core) >= MIN_DERIVED:
            cores.add(core)
            cores.add(core.translate(str.maketrans("+/", "-_")))
    return cores


def forms_of(value: str) -> set[str]:
    """Every substring that gives `value` away, as stored text may contain it."""
    if not value:
        return set()
    forms = {value}
    forms.update(line for line in value.splitlines() if len(line) >= MIN_LINE)
    if len(value) >= MIN_DERIVED:
        forms |= {value.upper(), value.lower(), quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        forms |= _base64_cores(value.encode())
    return forms


class Masker:
    """The secrets one attempt (or one engine step) has seen, and the masking of text and values with them."""

    def __init__(self) -> None:
        self._forms: list[str] = []  # longest first, so a longer form is masked before a shorter one inside it

    def remember(self, value: str) -> None:
        new = forms_of(value) - set(self._forms)
        if new:
            self._forms = sorted([*self._forms, *new], key=len, reverse=True)

    def mask(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_value(self, value: Any) -> Any:
        """A JSON-like value with every string in it masked, keys included."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_value(key): self.mask_value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask_value(item) for item in value]
        return value
