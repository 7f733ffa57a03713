"""Pebble expressions rewritten as Jinja expressions.

Pebble and Jinja share most expression syntax; the few Pebble-only operators (``??``/``???`` coalescing,
``c ? a : b``, ``equals``, ``contains``, ``a..b``, ``null``, ``is null``) are rewritten, and every expression is
re-emitted with explicit parentheses so Pebble's operator precedence (``'a' ~ b | upper`` filters the
concatenation) survives Jinja's different grammar.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class RewriteError(Exception):
    """The rewriter does not understand a tag; it is then passed to Jinja untouched."""


class Token(NamedTuple):
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


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise RewriteError(f"unexpected character {text[pos]!r}")
        pos = match.end()
        if match.lastgroup:
            tokens.append(Token(match.lastgroup, match.group()))
    return tokens


class Parser:
    """Precedence-climbing parser over Pebble expression tokens that emits Jinja source."""

    def __init__(self, tokens: list[Token], pos: int = 0) -> None:
        self.tokens = tokens
        self.pos = pos

    def _peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *texts: str, offset: int = 0) -> bool:
        token = self._peek(offset)
        return token is not None and token.kind in ("op", "name") and token.text in texts

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise RewriteError("unexpected end of expression")
        self.pos += 1
        return token

    def _expect(self, text: str) -> None:
        if not self.at(text):
            raise RewriteError(f"expected {text!r}")
        self.pos += 1

    def done(self) -> bool:
        return self.pos >= len(self.tokens)

    def parse_all(self) -> str:
        node = self.parse_tuple()
        if not self.done():
            raise RewriteError(f"unexpected {self.tokens[self.pos].text!r}")
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
            raise RewriteError("expected a filter name")
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
            raise RewriteError("expected a test name")
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
        raise RewriteError(f"unexpected {token.text!r}")

    def _sequence(self, closer: str) -> tuple[list[str], bool]:
        items: list[str] = []
        trailing = False
        while not self.at(closer):
            items.append(self.parse_expr().text)
            trailing = self.at(",")
            if trailing:
                self.pos += 1
            elif not self.at(closer):
                raise RewriteError(f"expected {closer!r}")
        self.pos += 1
        return items, trailing

    def _postfix(self, node: _Node) -> _Node:
        while True:
            if self.at("."):
                self.pos += 1
                token = self._take()
                if token.kind not in ("name", "num"):
                    raise RewriteError("expected an attribute name")
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


def rewrite_expression(body: str) -> str:
    tokens = tokenize(body)
    return Parser(tokens).parse_all() if tokens else body


def index_of(tokens: list[Token], kind: str, text: str, start: int) -> int:
    for index in range(start, len(tokens)):
        if tokens[index].kind == kind and tokens[index].text == text:
            return index
    return -1

