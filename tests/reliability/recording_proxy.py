"""A recording HTTP proxy in front of a real server: what `ted` and lm-eval actually sent, byte for byte."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import ClientSession, web


class RecordingProxy:
    """Forwards every request under /v1 to `upstream` and keeps the JSON bodies it forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.bodies: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _forward(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if raw:
            self.bodies.append(json.loads(raw))
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization", "accept")}
        async with ClientSession() as session, session.request(request.method, self.upstream + request.path_qs.removeprefix("/v1"), data=raw, headers=headers) as up:
            body = await up.read()
            return web.Response(body=body, status=up.status, content_type=up.content_type)

    def __enter__(self) -> RecordingProxy:
        started = threading.Event()

        async def start() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/v1/{tail:.*}", self._forward)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()

        threading.Thread(target=lambda: (self._loop.run_until_complete(start()), self._loop.run_forever()), daemon=True).start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def message_texts(body: dict[str, Any]) -> list[str]:
    """Every text a chat request carries (plain contents and text parts)."""
    texts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return texts
