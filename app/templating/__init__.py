"""Kestra (Pebble) templates rendered by a sandboxed Jinja2 environment: the API every layer renders through.

`render` (text), `render_value` (every string inside nested data), `evaluate` (an expression to its native value),
`is_truthy` (Kestra's If semantics), `make_render_function` (Kestra's `render()`). The Pebble-only syntax is
rewritten into Jinja first (pebble_expressions, pebble_tags); filters, tests and functions follow Kestra's behaviour
(filters, dates, values).
"""

from app.templating.render import (
    TemplateError,
    _compile_template,  # noqa: F401  (its cache statistics are read by tests)
    evaluate,
    is_truthy,
    make_render_function,
    render,
    render_value,
)

__all__ = ["TemplateError", "evaluate", "is_truthy", "make_render_function", "render", "render_value"]
