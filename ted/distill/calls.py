"""How the loop runs its model calls concurrently: all of them, or none left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ted.models.base import ChatResult


async def gather_or_cancel(*calls: Awaitable[Any]) -> list[Any]:
    """`asyncio.gather`, except that the first failure cancels the other calls and waits for them.

    Plain gather leaves the siblings running; `asyncio.run` then cancels them at shutdown and
    prints whatever they raise there, after the one error line.
    """
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def share_limiters(models: tuple[object, ...], concurrency: int) -> None:
    """One bound on calls in flight per endpoint: student and teacher on one server share it, a router counts as one."""
    limiters: dict[object, asyncio.Semaphore] = {}
    for model in models:
        if hasattr(model, "limiter"):
            endpoint = getattr(model, "base_url", None) or id(model)
            model.limiter = limiters.setdefault(endpoint, asyncio.Semaphore(concurrency))


async def paired(call: Awaitable[ChatResult]) -> tuple[ChatResult, ChatResult]:
    """A bare chat call in the (value, cost) shape of the stages."""
    result = await call
    return result, result
