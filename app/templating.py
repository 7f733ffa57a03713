"""Render Kestra (Pebble) templates with a sandboxed Jinja2 environment.

Pebble and Jinja share most syntax, so instead of a Pebble interpreter we rewrite the few Pebble-only
constructs into Jinja before compiling: ``??``/``???`` (coalescing), ``c ? a : b``, ``equals``,
``contains``, ``a..b``, ``null``, ``is null``, ``elseif``, ``verbatim``, 0-based ``loop.index`` and
map iteration. Expressions are re-emitted with explicit parentheses so Pebble's operator precedence
(e.g. ``'a' ~ b | upper`` filters the concatenation) survives Jinja's different grammar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.environment import Template, TemplateExpression
from jinja2.sandbox import SandboxedEnvironment

from app import templating_filters

__all__ = ["TemplateError", "evaluate", "is_truthy", "make_render_function", "render", "render_value"]

_MAX_RENDER_ROUNDS = 10
_MAX_SHOWN_SOURCE = 200


class TemplateError(Exception):
    """A template failed to compile or render; the message names the template and the cause."""


class _StrictChainableUndefined(ChainableUndefined, StrictUndefined):
    """Undefined that fails on use (Kestra's strictVariables) but tolerates ``a.b.c`` lookups.

    Chaining is what lets ``foo.bar is defined``, ``foo.bar ?? 'x'`` and ``foo.bar | default('x')``
    work when ``foo`` itself is missing; printing, iterating, comparing or calling it still raises
    with the name of the first missing variable.
    """

    __slots__ = ()


class _PebbleEnvironment(SandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        # Pebble resolves ``map.key`` to the entry before any method, so ``outputs.x.values`` or
        # ``inputs.items`` read the data rather than the dict methods Jinja would return.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


# --------------------------------------------------------------------------- Pebble -> Jinja rewriting


class _RewriteError(Exception):
    """The rewriter does not understand a tag; it is then passed to Jinja untouched."""


class _Token(NamedTuple):
    kind: str  # "str", "num", "name" or "op"
    text: str


class _Node(NamedTuple):
    text: str
    atomic: bool  # safe to use as an operand without parentheses


_TOKEN_RE = re.compile(
    r"\s+|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<num>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<op>\?{1,3}|\*\*|//|\.\.|==|!=|<=|>=|[:=+\-*/%~|.,()\[\]{}<>])",
    re.DOTALL,
)
# Pebble's precedences (higher binds tighter); "**"/"//"/"in" are Jinja/Kestra extras slotted in.
_PRECEDENCE = {
    "or": 10,
    "and": 15,
    "is": 20,
    "contains": 20,
    "in": 30,
    "not in": 30,
    "==": 30,
    "equals": 30,
    "!=": 30,
    "<": 30,
    ">": 30,
    "<=": 30,
    ">=": 30,
    "+": 40,
    "-": 40,
    "*": 60,
    "/": 60,
    "//": 60,
    "%": 60,
    "**": 70,
    "|": 100,
    "~": 110,
    "..": 120,
    "??": 120,
    "???": 120,
}
_WORD_OPERATORS = {"or", "and", "is", "contains", "in", "equals"}
# Pebble gives ``not`` precedence 500, which makes ``not x is defined`` mean ``(not x) is defined``;
# flows are written expecting the Jinja/Twig reading, so ``not`` binds just above ``and``.
_NOT_OPERAND_PRECEDENCE = 16
_UNARY_OPERAND_PRECEDENCE = 500
_STOP_WORDS = {"and", "or", "not", "in", "is", "if", "else", "contains", "equals", "recursive"}
_LOOP_RENAMES = {"index": "index0", "revindex": "revindex0"}  # Pebble's loop counters are 0-based


def _wrap(node: _Node) -> str:
    return node.text if node.atomic else f"({node.text})"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise _RewriteError(f"unexpected character {text[pos]!r}")
        pos = match.end()
        if match.lastgroup:
            tokens.append(_Token(match.lastgroup, match.group()))
    return tokens


class _Parser:
    """Precedence-climbing parser over Pebble expression tokens that emits Jinja source."""

    def __init__(self, tokens: list[_Token], pos: int = 0) -> None:
        self.tokens = tokens
        self.pos = pos

    def _peek(self, offset: int = 0) -> _Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *texts: str, offset: int = 0) -> bool:
        token = self._peek(offset)
        return token is not None and token.kind in ("op", "name") and token.text in texts

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise _RewriteError("unexpected end of expression")
        self.pos += 1
        return token

    def _expect(self, text: str) -> None:
        if not self.at(text):
            raise _RewriteError(f"expected {text!r}")
        self.pos += 1

    def done(self) -> bool:
        return self.pos >= len(self.tokens)

    def parse_all(self) -> str:
        node = self.parse_tuple()
        if not self.done():
            raise _RewriteError(f"unexpected {self.tokens[self.pos].text!r}")
        return node.text

    def parse_tuple(self, allow_cond: bool = True) -> _Node:
        first = self.parse_expr(0, allow_cond)
        if not self.at(","):
            return first
        items = [first.text]
        while self.at(","):
            self.pos += 1
            if self.done() or self.at("if", "recursive"):
                break
            items.append(self.parse_expr(0, allow_cond).text)
        return _Node(f"({', '.join(items)}{',' if len(items) == 1 else ''})", True)

    def _binary_operator(self) -> tuple[str, int] | None:
        token = self._peek()
        if token is None or token.kind == "str" or token.kind == "num":
            return None
        if token.kind == "op":
            return (token.text, 1) if token.text in _PRECEDENCE else None
        if token.text == "not" and self.at("in", offset=1):
            return "not in", 2
        return (token.text, 1) if token.text in _WORD_OPERATORS else None

    def parse_expr(self, min_precedence: int = 0, allow_cond: bool = True) -> _Node:
        left = self._unary()
        while (found := self._binary_operator()) is not None:
            name, width = found
            precedence = _PRECEDENCE[name]
            if precedence < min_precedence:
                break
            self.pos += width
            if name == "|":
                left = self._filter(left)
            elif name == "is":
                left = self._test(left)
            elif name in ("??", "???"):
                left = self._coalesce(left, name)
            else:  # all left-associative except the power operator
                right = self.parse_expr(precedence + (name != "**"), allow_cond=False)
                left = self._combine(name, left, right)
        if allow_cond and self.at("?"):
            self.pos += 1
            yes = self.parse_expr()
            self._expect(":")
            no = self.parse_expr()
            # Jinja's conditional only evaluates the chosen branch, so an undefined variable in the
            # other branch is harmless, exactly as in Pebble.
            return _Node(f"{_wrap(yes)} if {_wrap(left)} else {_wrap(no)}", False)
        if allow_cond and self.at("if"):
            self.pos += 1
            cond = self.parse_expr(allow_cond=False)
            if not self.at("else"):
                return _Node(f"{_wrap(left)} if {_wrap(cond)}", False)
            self.pos += 1
            return _Node(f"{_wrap(left)} if {_wrap(cond)} else {_wrap(self.parse_expr())}", False)
        return left

    @staticmethod
    def _combine(name: str, left: _Node, right: _Node) -> _Node:
        if name == "..":
            return _Node(f"_pb_range({left.text}, {right.text})", True)
        if name == "contains":
            return _Node(f"{_wrap(right)} in {_wrap(left)}", False)
        return _Node(f"{_wrap(left)} {'==' if name == 'equals' else name} {_wrap(right)}", False)

    def _coalesce(self, left: _Node, operator: str) -> _Node:
        # Collect the whole ``a ?? b ?? c`` chain and nest it to the right, so the output grows
        # linearly; "first present operand wins" is the same either way. The tested operand is emitted
        # twice (Jinja has no let-binding) but only the chosen fallback is ever evaluated.
        operands, operators = [left], [operator]
        while True:
            operands.append(self.parse_expr(_PRECEDENCE["??"] + 1, allow_cond=False))
            found = self._binary_operator()
            if found is None or found[0] not in ("??", "???"):
                break
            operators.append(found[0])
            self.pos += 1
        result = operands[-1]
        for operand, op in zip(reversed(operands[:-1]), reversed(operators), strict=True):
            test = "_pb_present" if op == "??" else "_pb_declared"  # ??? only falls back when undefined
            text = _wrap(operand)
            result = _Node(f"{text} if {text} is {test} else {_wrap(result)}", False)
        return result

    def _filter(self, left: _Node) -> _Node:
        token = self._take()
        if token.kind != "name":
            raise _RewriteError("expected a filter name")
        args = ""
        if self.at("("):
            self.pos += 1
            args = f"({self._call_args()})"
        return _Node(f"{_wrap(left)}|{token.text}{args}", True)

    def _test(self, left: _Node) -> _Node:
        negate = ""
        if self.at("not"):
            self.pos += 1
            negate = "not "
        token = self._take()
        if token.kind != "name":
            raise _RewriteError("expected a test name")
        name = "none" if token.text == "null" else token.text
        args = ""
        following = self._peek()
        if self.at("("):
            self.pos += 1
            args = f"({self._call_args()})"
        elif following is not None and (
            following.kind in ("str", "num")
            or (following.kind == "name" and following.text not in _STOP_WORDS)
            or self.at("[", "{")
        ):  # Jinja's ``x is divisibleby 3`` form
            args = f"({self._postfix(self._primary()).text})"
        return _Node(f"{_wrap(left)} is {negate}{name}{args}", False)

    def _unary(self) -> _Node:
        if self.at("not"):
            self.pos += 1
            operand = self.parse_expr(_NOT_OPERAND_PRECEDENCE, allow_cond=False)
            return _Node(f"not {_wrap(operand)}", False)
        if self.at("-", "+"):
            sign = self._take().text
            operand = self.parse_expr(_UNARY_OPERAND_PRECEDENCE, allow_cond=False)
            return _Node(f"{sign}{_wrap(operand)}", False)
        return self._postfix(self._primary())

    def _primary(self) -> _Node:
        token = self._take()
        if token.kind == "str":
            parts = [token.text]
            while (nxt := self._peek()) is not None and nxt.kind == "str":  # implicit concatenation
                parts.append(self._take().text)
            return _Node(" ".join(parts), True)
        if token.kind == "num":
            return _Node(token.text, True)
        if token.kind == "name":
            return _Node("none" if token.text == "null" else token.text, True)
        if token.text == "(":
            items, trailing = self._sequence(")")
            if len(items) == 1 and not trailing:
                return _Node(f"({items[0]})", True)
            return _Node(f"({', '.join(items)}{',' if len(items) == 1 else ''})", True)
        if token.text == "[":
            return _Node(f"[{', '.join(self._sequence(']')[0])}]", True)
        if token.text == "{":
            pairs: list[str] = []
            while not self.at("}"):
                key = self.parse_expr().text
                self._expect(":")
                pairs.append(f"{key}: {self.parse_expr().text}")
                if not self.at("}"):
                    self._expect(",")
            self.pos += 1
            return _Node(f"{{{', '.join(pairs)}}}", True)
        raise _RewriteError(f"unexpected {token.text!r}")

    def _sequence(self, closer: str) -> tuple[list[str], bool]:
        items: list[str] = []
        trailing = False
        while not self.at(closer):
            items.append(self.parse_expr().text)
            trailing = self.at(",")
            if trailing:
                self.pos += 1
            elif not self.at(closer):
                raise _RewriteError(f"expected {closer!r}")
        self.pos += 1
        return items, trailing

    def _postfix(self, node: _Node) -> _Node:
        while True:
            if self.at("."):
                self.pos += 1
                token = self._take()
                if token.kind not in ("name", "num"):
                    raise _RewriteError("expected an attribute name")
                attr = _LOOP_RENAMES.get(token.text, token.text) if node.text == "loop" else token.text
                node = _Node(f"{node.text}.{attr}", True)
            elif self.at("["):
                self.pos += 1
                parts: list[str] = []
                while not self.at("]"):
                    if self.at(":", ","):
                        parts.append(self._take().text + " ")
                    else:
                        parts.append(self.parse_expr().text)
                self.pos += 1
                node = _Node(f"{node.text}[{''.join(parts).strip()}]", True)
            elif self.at("("):
                self.pos += 1
                node = _Node(f"{node.text}({self._call_args()})", True)
            else:
                return node

    def _call_args(self) -> str:
        args: list[str] = []
        while not self.at(")"):
            prefix = self._take().text if self.at("*", "**") else ""
            token = self._peek()
            if token is not None and token.kind == "name" and self.at("=", offset=1):
                self.pos += 2
                prefix = f"{token.text}="
            args.append(prefix + self.parse_expr().text)
            if not self.at(")"):
                self._expect(",")
        self.pos += 1
        return ", ".join(args)


def _rewrite_expression(body: str) -> str:
    tokens = _tokenize(body)
    return _Parser(tokens).parse_all() if tokens else body


def _index_of(tokens: list[_Token], kind: str, text: str, start: int) -> int:
    for index in range(start, len(tokens)):
        if tokens[index].kind == kind and tokens[index].text == text:
            return index
    return -1


def _rewrite_statement(body: str) -> str:
    tokens = _tokenize(body)
    if not tokens or tokens[0].kind != "name":
        return body
    head = tokens[0].text
    if head in ("if", "elif", "elseif"):
        return f"{'elif' if head == 'elseif' else head} {_Parser(tokens, 1).parse_all()}"
    if head == "for":
        split_at = _index_of(tokens, "name", "in", 1)
        if split_at < 0:
            return body
        parser = _Parser(tokens, split_at + 1)
        iterable = parser.parse_tuple(allow_cond=False).text
        tail = ""
        if parser.at("if"):
            parser.pos += 1
            tail += f" if {parser.parse_expr(allow_cond=False).text}"
        if parser.at("recursive"):
            parser.pos += 1
            tail += " recursive"
        if not parser.done():
            raise _RewriteError("unexpected tokens in for tag")
        targets = " ".join(token.text for token in tokens[1:split_at])
        return f"for {targets} in _pb_iter({iterable}){tail}"
    if head == "set":
        split_at = _index_of(tokens, "op", "=", 1)
        if split_at < 0:
            return body  # block form: {% set x %}...{% endset %}
        targets = " ".join(token.text for token in tokens[1:split_at])
        return f"set {targets} = {_Parser(tokens, split_at + 1).parse_all()}"
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


def _read_tag(source: str, start: int) -> _Tag | None:
    closer = "}}" if source[start + 1] == "{" else "%}"
    close = _find_close(source, start + 2, closer)
    if close < 0:
        return None
    inner = source[start + 2 : close]
    lead = inner[:1] if inner[:1] in ("-", "+") else ""
    trail = inner[-1:] if len(inner) > len(lead) and inner[-1:] in ("-", "+") else ""
    return _Tag(close + 2, lead, inner[len(lead) : len(inner) - len(trail)], trail)


def _rewrite_template(source: str) -> str:
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
        tag = _read_tag(source, start)
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
            rewrite = _rewrite_expression if opener == "{{" else _rewrite_statement
            body = rewrite(tag.body)
        except _RewriteError:
            body = tag.body  # let Jinja accept it as-is or produce its own syntax error
        newlines = "\n" * tag.body.count("\n")  # keep line numbers in Jinja's error messages right
        out.append(f"{opener}{tag.lead} {body.strip()} {newlines}{tag.trail}{closer}")
        pos = tag.end
    out.append(source[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- environment and API

_ENV = _PebbleEnvironment(
    undefined=_StrictChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=templating_filters.stringify,
)
_ENV.filters.update(templating_filters.FILTERS)
_ENV.tests.update(templating_filters.TESTS)
# Pebble's `defined` is "not null": an optional input left empty is not defined.
_ENV.tests["defined"] = lambda value: value is not None and not isinstance(value, Undefined)
_ENV.tests["_pb_declared"] = lambda value: not isinstance(value, Undefined)
_ENV.globals.update(templating_filters.GLOBALS)


@lru_cache(maxsize=2048)
def _compile_template(source: str) -> Template:
    return _ENV.from_string(_rewrite_template(source))


@lru_cache(maxsize=1024)
def _compile_expression(expression: str) -> TemplateExpression:
    try:
        rewritten = _rewrite_expression(expression)
    except _RewriteError:
        rewritten = expression
    return _ENV.compile_expression(rewritten, undefined_to_none=False)


def _has_syntax(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _error(source: str, exc: Exception) -> TemplateError:
    shown = source if len(source) <= _MAX_SHOWN_SOURCE else source[: _MAX_SHOWN_SOURCE - 3] + "..."
    if isinstance(exc, TemplateSyntaxError):
        detail = f"{exc.message} (line {exc.lineno})"
    else:
        detail = str(exc) or type(exc).__name__
    return TemplateError(f"Unable to render '{shown}': {detail}")


def _ensure_defined(value: Any) -> Any:
    """Evaluated values must not smuggle an Undefined out of the sandbox (e.g. inside a list)."""
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError with the variable name
    elif isinstance(value, Mapping):
        for item in value.values():
            _ensure_defined(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _ensure_defined(item)
    return value


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a Pebble template string; strings without template syntax are returned untouched."""
    if not _has_syntax(template):
        return template
    try:
        return _compile_template(template).render(context)
    except Exception as exc:  # filters and context callables raise anything; report uniformly
        raise _error(template, exc) from exc


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside nested dicts/lists (dict keys included); other values pass through."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {render_value(k, context): render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, tuple):
        return tuple(render_value(item, context) for item in value)
    return value


def _whole_expression(text: str) -> str | None:
    """Inner expression when ``text`` is exactly one ``{{ ... }}`` tag, else None."""
    if not text.startswith("{{"):
        return None
    tag = _read_tag(text, 0)
    return tag.body if tag is not None and tag.end == len(text) else None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` or ``"{{ expr }}"`` to its native Python value.

    A string mixing text and tags (``"a {{ b }}"``) can only produce text, so it is rendered.
    """
    if not isinstance(expression, str):  # already-native YAML values (lists, bools) need no evaluation
        return expression
    stripped = expression.strip()
    inner = _whole_expression(stripped)
    if inner is None:
        if _has_syntax(stripped):
            return render(expression, context)
        inner = stripped
    try:
        return _ensure_defined(_compile_expression(inner)(context))
    except Exception as exc:
        raise _error(expression, exc) from exc


_FALSY_STRINGS = {"false", "0", "-0", ""}


def is_truthy(value: Any) -> bool:
    """Kestra ``If`` semantics: ``"false"``, ``"0"``, ``"-0"``, blank, null, false, 0 and empty are false."""
    if value is None or isinstance(value, Undefined):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        # Kestra compares the rendered text exactly; trimming/lowercasing also accepts "False " from YAML.
        return value.strip().lower() not in _FALSY_STRINGS
    if isinstance(value, Sized):
        return len(value) > 0
    return bool(value)


def make_render_function(context: Mapping[str, Any]) -> Callable[[str], str]:
    """Build Kestra's ``render(str)`` template function bound to ``context``.

    Kestra renders recursively until the text stops changing, so ``render(vars.third)`` resolves
    templates stored inside variables (bounded to avoid looping on self-referencing values).
    """

    def render_function(value: Any, recursive: bool = True) -> Any:
        if not isinstance(value, str):
            return value
        scope = context if "render" in context else {**context, "render": render_function}
        current = value
        for _ in range(_MAX_RENDER_ROUNDS if recursive else 1):
            rendered = render(current, scope)
            if rendered == current:
                break
            current = rendered
        return current

    return render_function
