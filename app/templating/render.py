"""Render Kestra (Pebble) templates with a sandboxed Jinja2 environment.

Pebble and Jinja share most syntax, so instead of a Pebble interpreter we rewrite the few Pebble-only
constructs into Jinja before compiling: ``??``/``???`` (coalescing), ``c ? a : b``, ``equals``,
``contains``, ``a..b``, ``null``, ``is null``, ``elseif``, ``verbatim``, 0-based ``loop.index`` and
map iteration. Expressions are re-emitted with explicit parentheses so Pebble's operator precedence
(e.g. ``'a' ~ b | upper`` filters the concatenation) survives Jinja's different grammar.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sized
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined, nodes, pass_context
from jinja2.environment import Template, TemplateExpression
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from app.templating import budget, filters
from app.templating.pebble_expressions import RewriteError, rewrite_expression
from app.templating.pebble_tags import read_tag, rewrite_template
from app.templating.values import stringify

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


class _Budgeted(NodeTransformer):
    """`a ~ b` compiles to an inline join Jinja gives no hook for; it becomes a call of `budget.concat`."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        parts = [self.visit(part) for part in node.nodes]
        return nodes.Call(nodes.Name("_pb_concat", "load"), parts, [], None, None, lineno=node.lineno)


# Filters whose result grows with one of their arguments: sized before they run (the rest only combine or shrink
# what they are given, and their result is checked after).
_WIDTH_ARGUMENTS = {"center": 0, "slice": 0, "batch": 0}


def _before_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if name in _WIDTH_ARGUMENTS:
        for argument in [*args[1 + _WIDTH_ARGUMENTS[name]:2 + _WIDTH_ARGUMENTS[name]], *kwargs.values()]:
            budget.check_width(argument)
    elif not args or not isinstance(args[0], str):
        return
    elif name == "format":
        budget.check_printf(args[0], args[1:])
    elif name == "indent":
        budget.check_indent(args[0], args[1] if len(args) > 1 else kwargs.get("width", 4))
    elif name == "nindent":  # Kestra's nindent(amount, prefix): each line gets `prefix * amount`
        amount = args[1] if len(args) > 1 else kwargs.get("amount", 0)
        prefix = args[2] if len(args) > 2 else kwargs.get("prefix", " ")
        if isinstance(amount, int):
            budget.check_indent(args[0], amount * len(str(prefix)))


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` spending from the rendering's budget. It takes the context, which also keeps Jinja from running it
    at compile time (constant folding), outside any budget and before the template is even rendered."""
    wants = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

    @pass_context
    @functools.wraps(func)
    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        budget.tick()
        _before_filter(name, args, kwargs)
        first = {"context": (context,), "eval_context": (context.eval_ctx,),
                 "environment": (context.environment,)}.get(wants or "", ())
        return budget.checked(func(*first, *args, **kwargs))

    return guarded


class _PebbleEnvironment(ImmutableSandboxedEnvironment):
    """Pebble has no method that changes a list or a map in place; refusing them (`l.extend(l)` in a loop) keeps
    every growth of a value behind an operator, a filter or a call that the budget checks."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        return super()._generate(_Budgeted().visit(source), *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget.before_binop(operator, left, right)
        return budget.checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget.tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):  # 'x'.ljust(n), '{:>9}'.format(...), s.replace(a, b)
            budget.before_str_method(owner, getattr(__obj, "__name__", ""), args)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Pebble resolves ``map.key`` to the entry before any method, so ``outputs.x.values`` or
        # ``inputs.items`` read the data rather than the dict methods Jinja would return.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)



_ENV = _PebbleEnvironment(
    undefined=_StrictChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=stringify,
)
_ENV.filters.update(filters.FILTERS)
_ENV.filters.update({name: _guarded_filter(name, func) for name, func in _ENV.filters.items()})
_ENV.tests.update(filters.TESTS)
# Pebble's `defined` is "not null": an optional input left empty is not defined.
_ENV.tests["defined"] = lambda value: value is not None and not isinstance(value, Undefined)
_ENV.tests["_pb_declared"] = lambda value: not isinstance(value, Undefined)
_ENV.globals.update(filters.GLOBALS)
_ENV.globals["_pb_concat"] = budget.concat
del _ENV.globals["lipsum"]  # not Pebble's, and `lipsum(n=200000)` is half a minute of CPU


@lru_cache(maxsize=2048)
def _compile_template(source: str) -> Template:
    return _ENV.from_string(rewrite_template(source))


@lru_cache(maxsize=1024)
def _compile_expression(expression: str) -> TemplateExpression:
    try:
        rewritten = rewrite_expression(expression)
    except RewriteError:
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
        with budget.rendering() as limits:
            pieces, size = [], 0
            for piece in _compile_template(template).generate(context):
                size += len(piece)
                if size > limits.chars:  # loops printing a little each time add up
                    raise budget.too_long(size)
                budget.tick()
                pieces.append(piece)
            return "".join(pieces)
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
    tag = read_tag(text, 0)
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
        with budget.rendering():
            value = _ensure_defined(_compile_expression(inner)(context))
            if isinstance(value, Mapping | list | tuple):
                budget.ensure_json_fits(value)  # what gets stored or printed of it must fit too
            return value
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
