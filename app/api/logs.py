"""`/api/v1/logs/{executionId}`: an execution's logs as JSON, as a text download, or followed live as
server-sent events until the execution ends, as Kestra's API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app import runtime
from app.api import shapes
from app.errors import NotFoundError
from app.model import log_levels

router = APIRouter(tags=["Logs"])
FOLLOW_POLL = 0.2  # seconds between reads of new lines while following


def _checked_level(minLevel: str | None) -> str | None:  # noqa: N803 - Kestra's name
    if minLevel is not None and minLevel.upper() not in log_levels.LEVELS:
        raise HTTPException(422, f"minLevel must be one of {', '.join(log_levels.LEVELS)}")
    return minLevel.upper() if minLevel else None


def _rows(execution_id: str, min_level: str | None, task_id: str | None, task_run_id: str | None,
          attempt: int | None, after: int = 0) -> tuple[Any, list[dict[str, Any]]]:
    try:
        ex = runtime.store().get_execution(execution_id, with_runs=False)
    except NotFoundError:
        raise HTTPException(404, f"Execution {execution_id} not found") from None
    rows = [row for row in runtime.store().logs(execution_id, after=after, min_level=min_level)
            if (task_id is None or row["task_id"] == task_id) and (task_run_id is None or row["task_run_id"] ==
                                                                   task_run_id)
            and (attempt is None or row["attempt"] == attempt)]
    return ex, rows


@router.get("/logs/{execution_id}")
def logs(execution_id: str, minLevel: str | None = None, taskId: str | None = None,  # noqa: N803
         taskRunId: str | None = None, attempt: int | None = None) -> list[dict[str, Any]]:
    ex, rows = _rows(execution_id, _checked_level(minLevel), taskId, taskRunId, attempt)
    return [shapes.log(ex, row) for row in rows]


@router.get("/logs/{execution_id}/download", response_class=PlainTextResponse)
def download(execution_id: str, minLevel: str | None = None, taskId: str | None = None,  # noqa: N803
             taskRunId: str | None = None, attempt: int | None = None) -> str:
    ex, rows = _rows(execution_id, _checked_level(minLevel), taskId, taskRunId, attempt)
    return "".join(f"{shapes.log(ex, row)['timestamp']} {row['level']} {row['message']}\n" for row in rows)


@router.get("/logs/{execution_id}/follow")
async def follow(execution_id: str, minLevel: str | None = None) -> StreamingResponse:  # noqa: N803
    level = _checked_level(minLevel)
    await run_in_threadpool(_rows, execution_id, level, None, None, None)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        after = 0
        while True:
            ex, rows = await run_in_threadpool(_rows, execution_id, level, None, None, None, after)
            for row in rows:
                after = max(after, row["id"])
                yield f"event: log\ndata: {json.dumps(shapes.log(ex, row))}\n\n"
            if ex.state.terminal and not rows:  # ended, and the last lines were sent
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(FOLLOW_POLL)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
