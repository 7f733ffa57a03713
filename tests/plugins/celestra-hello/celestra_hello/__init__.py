"""A task type from outside Celestra: `io.example.hello.Greet` greets `name` and returns the greeting."""

from __future__ import annotations

from typing import Any, Literal

from workers.plugin_api import RunContext, RunnableTask, TaskFailure


class Greet(RunnableTask):
    type: Literal["io.example.hello.Greet", "hello.Greet"]
    name: str
    punctuation: Literal["!", "."] = "!"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        name = ctx.render_str(self.name)
        if not name.strip():
            raise TaskFailure("Greet needs a name")
        greeting = f"Hello, {name}{self.punctuation}"
        ctx.log("INFO", greeting)
        return {"greeting": greeting}


TASKS = [Greet]
