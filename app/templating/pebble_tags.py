"""Pebble templates rewritten as Jinja templates: tags are found (strings and nesting respected) and their bodies
rewritten; ``elseif``, ``verbatim`` and map iteration become their Jinja forms, line numbers are kept."""

from __future__ import annotations

import re
from typing import NamedTuple

from app.templating.pebble_expressions import Parser, RewriteError, index_of, rewrite_expression, tokenize


def _rewrite_statement(body: str) -> str:
    tokens = tokenize(body)
    if not tokens or tokens[0].kind != "name":
        return body
    head = tokens[0].text
    if head in ("if", "elif", "elseif"):
        return f"{'elif' if head == 'elseif' else head} {Parser(tokens, 1).parse_all()}"
    if head == "for":
        split_at = index_of(tokens, "name", "in", 1)
        if split_at < 0:
            return body
        parser = Parser(tokens, split_at + 1)
        iterable = parser.parse_tuple(allow_cond=False).text
        tail = ""
        if parser.at("if"):
            parser.pos += 1
            tail += f" if {parser.parse_expr(allow_cond=False).text}"
        if parser.at("recursive"):
            parser.pos += 1
            tail += " recursive"
        if not parser.done():
            raise RewriteError("unexpected tokens in for tag")
        targets = " ".join(token.text for token in tokens[1:split_at])
        return f"for {targets} in _pb_iter({iterable}){tail}"
    if head == "set":
        split_at = index_of(tokens, "op", "=", 1)
        if split_at < 0:
            return body  # block form: {% set x %}...{% endset %}
        targets = " ".join(token.text for token in tokens[1:split_at])
        return f"set {targets} = {Parser(tokens, split_at + 1).parse_all()}"
    return body


def _skip_string(source: str, pos: int) -> int:
    quote, pos = source[pos], pos + 1
    while pos < len(source):
        if source[pos] == "\\":
            pos += 2
        elif source[pos] == quote:
            return pos + 1
        else:
            pos += 1
    return pos


def _find_close(source: str, pos: int, closer: str) -> int:
    """Index of the tag's closing delimiter, skipping string literals and nested brackets (as Jinja does)."""
    depth = 0
    while pos < len(source):
        char = source[pos]
        if char in "'\"":
            pos = _skip_string(source, pos)
            continue
        if depth == 0 and source.startswith(closer, pos):
            return pos
        if char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        pos += 1
    return -1


_OPENER_RE = re.compile(r"\{[{%#]")
_END_RAW_RE = re.compile(r"\{%([-+]?)\s*end(?:raw|verbatim)\s*(-?)%\}")


class _Tag(NamedTuple):
    end: int  # index just past the closing delimiter
    lead: str  # whitespace-control marker after the opener ("-", "+" or "")
    body: str
    trail: str


def read_tag(source: str, start: int) -> _Tag | None:
    closer = "}}" if source[start + 1] == "{" else "%}"
    close = _find_close(source, start + 2, closer)
    if close < 0:
        return None
    inner = source[start + 2 : close]
    lead = inner[:1] if inner[:1] in ("-", "+") else ""
    trail = inner[-1:] if len(inner) > len(lead) and inner[-1:] in ("-", "+") else ""
    return _Tag(close + 2, lead, inner[len(lead) : len(inner) - len(trail)], trail)


def rewrite_template(source: str) -> str:
    out: list[str] = []
    pos = 0
    while (match := _OPENER_RE.search(source, pos)) is not None:
        start = match.start()
        out.append(source[pos:start])
        if match.group() == "{#":  # comments are copied verbatim: their content is not code
            end = source.find("#}", start + 2)
            pos = len(source) if end < 0 else end + 2
            out.append(source[start:pos])
            continue
        tag = read_tag(source, start)
        if tag is None:  # unterminated tag: hand the rest to Jinja, which reports it properly
            pos = start
            break
        opener, closer = source[start : start + 2], source[tag.end - 2 : tag.end]
        head = tag.body.split(None, 1)[0] if tag.body.strip() else ""
        if opener == "{%" and head in ("raw", "verbatim"):
            end_raw = _END_RAW_RE.search(source, tag.end)
            stop = end_raw.start() if end_raw else len(source)
            out.append(f"{{%{tag.lead} raw {tag.trail}%}}{source[tag.end : stop]}")
            if end_raw:
                out.append(f"{{%{end_raw.group(1)} endraw {end_raw.group(2)}%}}")
            pos = end_raw.end() if end_raw else stop
            continue
        try:
            rewrite = rewrite_expression if opener == "{{" else _rewrite_statement
            body = rewrite(tag.body)
        except RewriteError:
            body = tag.body  # let Jinja accept it as-is or produce its own syntax error
        newlines = "\n" * tag.body.count("\n")  # keep line numbers in Jinja's error messages right
        out.append(f"{opener}{tag.lead} {body.strip()} {newlines}{tag.trail}{closer}")
        pos = tag.end
    out.append(source[pos:])
    return "".join(out)
