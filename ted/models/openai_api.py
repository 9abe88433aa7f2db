"""Any OpenAI-compatible chat endpoint (hosted APIs, vLLM, SGLang, llama.cpp's server).

Built on the official `openai` client, whose retry loop already does what we need: it retries
timeouts, connection errors, 408/409/429 and 5xx with exponential backoff and jitter, and waits
exactly as long as a `Retry-After`/`retry-after-ms` header asks (up to two minutes). We only
read back how many retries it took (`retries_taken` on the raw response) for the cost ledger.
Requests go out through the client's own `post` (its documented way to send any body), not
`chat.completions.create`: that walks every message through the SDK's type transforms, and the
reply is read as plain JSON rather than built into pydantic models, which together cost about
1 ms of CPU per request (`make bench` measures the framework's overhead per call). Our bodies are
plain JSON already, and server-specific fields (`extra`) simply go into them.

What this module adds on top:
- `n` samples even from servers that ignore `n` (llama.cpp returns one choice): the missing
  samples are requested concurrently, with distinct seeds, and merged.
- Structured output that degrades gracefully: OpenAI-style `json_schema` first, then
  llama.cpp-style `json_object` + `schema` (grammar-constrained there), then plain text; the
  first form a server accepts is remembered for this model instance. A request sent again in
  the next form counts as a retry, not as another request.
- Replies that arrive but cannot be used (a 200 with a broken JSON body or no choices) are
  retried like failed requests, within the same `max_retries`, and counted as retries.
- Thinking models: the reasoning a server returns apart from the answer (`reasoning_content`,
  as vLLM/SGLang reasoning parsers and DeepSeek-style APIs send it, or `reasoning`) or inline as
  `<think>…</think>` is kept in `ChatResult.reasoning`, and each choice's `finish_reason` is kept.
- Generation budgets that fit: `max_tokens` is lowered to what the server's context leaves after
  the prompt when `/v1/models` reports the context (vLLM, SGLang: `max_model_len`), and to the
  limits a server states when it refuses a request as too long (then the request is re-sent).
- One-line `ModelError`s for what users get wrong (server down, wrong model, bad key),
  never containing the API key.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ted.errors import ModelError
from ted.limits import MAX_STREAM_CHARS
from ted.redact import remember_secret, scrub_text, scrub_url, split_credentials
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, to_openai_messages
from ted.models.openai_wire import ErrorReply, deadline_client, limits_said, innermost, one_line, read_completion, root_cause, server_message

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_DUMMY_KEY = "sk-local-no-key"  # local servers usually ignore the key, but the client needs one
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

# Backoff between retries of unusable 200 replies, as the client's own: 0.5 s doubling up to 8 s.
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.5, 8.0

# Ways to ask for JSON, most specific first; None = no response_format at all.
_JSON_FORMATS: tuple[str | None, ...] = ("json_schema", "json_object", None)

# Where servers report a model's context in `/v1/models` (vLLM and SGLang; OpenRouter; LM Studio).
_CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length")
# A prompt's size before the server has said it: about 3 characters a token (math and code run
# denser than prose's 4), plus a generous allowance per image; the server's own count replaces it.
_CHARS_PER_TOKEN, _TOKENS_PER_IMAGE, _TOKENS_PER_MESSAGE = 3, 1536, 8


@dataclass
class _Fit:
    """One request's prompt size, in tokens: estimated until the server states it."""

    prompt_tokens: int


def _estimate_prompt_tokens(wire: list[dict[str, Any]]) -> int:
    total = 0
    for message in wire:
        content = message["content"]
        parts = [content] if isinstance(content, str) else content
        for part in parts:
            if isinstance(part, str):
                total += len(part) // _CHARS_PER_TOKEN
            elif part.get("type") == "text":
                total += len(part["text"]) // _CHARS_PER_TOKEN
            else:
                total += _TOKENS_PER_IMAGE
        total += _TOKENS_PER_MESSAGE
    return total


def _is_local(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


class OpenAIChatModel(BaseChatModel):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    `extra` keyword arguments are sent as additional request fields (for example `top_p`, or
    vLLM's `chat_template_kwargs`), so server-specific options need no code here.
    """

    backend = "openai"

    def __init__(
        self,
        spec: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        **extra: Any,
    ) -> None:
        super().__init__(spec, model, max_concurrency)
        full_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        # The live request keeps every credential: userinfo in the URL as Basic auth (in place of
        # the key's Bearer header), secret query parameters as the client's default query (appended
        # to every request path). Everything shown to people uses `shown_url`.
        self.base_url, self._query, self._basic_auth = split_credentials(full_url)
        self.shown_url = scrub_url(full_url)
        if not api_key:
            if not _is_local(full_url):
                raise ModelError(
                    f"missing API key for {self.shown_url}: set ${api_key_env} (or name another variable with --api-key-env)"
                )
            api_key = LOCAL_DUMMY_KEY
        remember_secret(api_key)  # a server quoting it back in an error is masked in every line ted prints
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra = extra
        self._api_key = api_key
        basic = self._basic_auth.split()[-1] if self._basic_auth else None
        for secret in (api_key if api_key != LOCAL_DUMMY_KEY else None, basic, *self._query.values()):
            remember_secret(secret)  # a server that echoes one back is masked wherever ted writes it
        self._json_format = 0  # index into _JSON_FORMATS: the first form not yet rejected
        self._json_accepted = False  # whether the server has accepted that form once
        self._clients: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self.context_length: int | None = None  # tokens, prompt + completion, as the server reports them
        self.max_output: int | None = None  # completion tokens a server said it allows at most
        self._context_asked: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model!r} at {self.shown_url})"

    # ------------------------------------------------------------------ client
    def _client(self) -> Any:
        """One AsyncOpenAI client per event loop: its connection pool is bound to the loop.

        Its transport is aiohttp (the SDK's `DefaultAioHttpClient`, proxies from the environment as
        with httpx): with a hundred calls in flight, httpx's pool cost about 2 ms of CPU per request
        (`make bench` measures the framework's overhead per call)."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        if self._clients is None or self._clients[0] is not loop:
            client = AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, default_query=self._query or None, timeout=self.timeout,
                max_retries=self.max_retries, http_client=deadline_client(self.timeout, self.shown_url),
                default_headers={"Authorization": self._basic_auth} if self._basic_auth else None,
            )  # fmt: skip
            self._clients = (loop, client)
        return self._clients[1]

    async def aclose(self) -> None:
        if self._clients is not None and not self._clients[0].is_closed():
            await self._clients[1].close()
        self._clients = None

    # ------------------------------------------------------------------ limits
    async def _ask_context(self) -> None:
        """Read the model's context from `/v1/models` once; servers that do not say leave it None."""
        if self._context_asked is None or self._context_asked.get_loop() is not asyncio.get_running_loop():
            self._context_asked = asyncio.ensure_future(self._read_context())
        await asyncio.shield(self._context_asked)

    async def _read_context(self) -> None:
        try:
            listing = await self._client().with_options(max_retries=0, timeout=min(self.timeout, 10.0)).models.list()
            entries = [m for m in listing.data if m.id == self.model] or list(listing.data[:1])
        except Exception:  # a hint only: a server without the listing is sent the budget as asked
            return
        extra = (entries[0].model_extra or {}) if entries else {}
        found = next((extra[key] for key in _CONTEXT_FIELDS if isinstance(extra.get(key), int) and extra[key] > 0), None)
        if found is not None and self.context_length is None:
            self.context_length = found

    def max_tokens_for(self, requested: int, fit: _Fit) -> int:
        """`requested`, lowered to what the server allows and to what its context leaves after the prompt."""
        allowed = requested if self.max_output is None else min(requested, self.max_output)
        if self.context_length is not None:
            allowed = min(allowed, self.context_length - fit.prompt_tokens)
        return max(1, allowed)

    def _learn_limits(self, err: Any, fit: _Fit) -> bool:
        """Take the limits a refusal states; True when they change what the request would ask for."""
        text = f"{server_message(err)} {err.message}"
        before = (self.context_length, self.max_output, fit.prompt_tokens)
        context, prompt, output = limits_said(text)
        if context is not None:
            self.context_length = context
        if prompt is not None:
            fit.prompt_tokens = prompt
        if output is not None:
            self.max_output = output
        return (self.context_length, self.max_output, fit.prompt_tokens) != before

    # ------------------------------------------------------------------ requests
    def _request(
        self, messages: list[dict[str, Any]], params: SamplingParams, n: int, seed: int | None, fit: _Fit
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": self.max_tokens_for(params.max_tokens, fit),
        }
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        if params.json_schema is not None:
            kind = _JSON_FORMATS[self._json_format]
            if kind == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "reply", "schema": params.json_schema, "strict": False},
                }
            elif kind == "json_object":
                body["response_format"] = {"type": "json_object", "schema": params.json_schema}
        body.update(self.extra)
        return body

    async def _create(self, build: Any, fit: _Fit, *, stream: bool = False) -> Any:
        """Send one request (`build()` makes its body); step down the JSON forms the server rejects,
        and shorten `max_tokens` to the limits a server states when it refuses a request as too long.

        Until a server has accepted our JSON form, the request goes out once without retries:
        some servers (llama.cpp) answer an unknown form with HTTP 500, which the client would
        otherwise retry with backoff for a minute. If that probe fails for another reason, the
        request is sent again with the client's full retries. Returns the client's raw
        response (which knows how many retries the client took; with `stream`, the client's event
        stream, whose `response` is the raw one) and how many times we sent it
        again (in the next JSON form, shortened, or after a failed probe): for the cost ledger,
        each of those is a retry of the one request, not another request. A new process learns
        the server's JSON form again, so a resumed run's work is counted as an uninterrupted one's.
        """
        import openai

        probe = True
        sent = relearned = 0
        while True:
            sent += 1
            used = self._json_format
            body = build()
            asks_json = "response_format" in body
            quick = asks_json and probe and not self._json_accepted
            client = self._client().with_options(max_retries=0) if quick else self._client()
            try:
                if stream:
                    from openai.types.chat import ChatCompletionChunk

                    raw = await client.post(
                        "/chat/completions", body={**body, "stream": True}, cast_to=ChatCompletionChunk, stream=True,
                        stream_cls=openai.AsyncStream[ChatCompletionChunk],
                    )  # fmt: skip
                else:
                    raw = await client.post("/chat/completions", body=body, cast_to=openai.AsyncAPIResponse[object])
            except openai.APIStatusError as err:
                if asks_json and err.status_code in (400, 422, 500) and "response_format" in str(err.body or err.message):
                    # Concurrent requests may all be rejected; step down once per form.
                    self._json_format = max(self._json_format, used + 1)
                    continue
                if err.status_code == 400 and relearned < 2 and self._learn_limits(err, fit):
                    relearned += 1
                    continue
                if not quick:
                    raise await self._model_error(err) from None
                probe = False
                continue
            except openai.OpenAIError as err:
                if not quick:
                    raise await self._model_error(err) from None
                probe = False
                continue
            headers = raw.response.headers if stream else raw.headers
            kind = (headers.get("content-type") or "").split(";")[0].strip().lower()
            if kind.startswith("text/html"):  # a login page, a proxy's error page, a web app at that URL: never a reply
                raise ModelError(
                    f"{self.shown_url} answered with an HTML page, not an OpenAI-compatible API; check the base URL (it usually ends in /v1)"
                )
            if stream and kind not in ("", "text/event-stream", "application/json"):  # would stream nothing: an empty reply
                raise ModelError(f"{self.shown_url} answered a stream with {kind}, not server-sent events; is it an OpenAI-compatible endpoint?")
            if asks_json:
                self._json_accepted = True
            return raw, sent - 1

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        wire = to_openai_messages(messages)
        await self._ask_context()
        fit = _Fit(_estimate_prompt_tokens(wire))
        result = ChatResult(texts=[], requests=0)

        async def one(n: int, seed: int | None) -> None:
            # The client retries transport and HTTP failures; a 200 whose body is broken (invalid or
            # cut-off JSON) or holds no choices is retried here, with the same bound and backoff.
            for attempt in range(self.max_retries + 1):
                raw, resent = await self._create(lambda: self._request(wire, params, n, seed, fit), fit)
                # Re-sending a request is a retry, as the client counts its own: not another request.
                result.requests += int(attempt == 0)
                result.retries += raw.retries_taken + resent
                try:
                    choices, usage = read_completion(await raw.parse(), n)
                except ErrorReply as err:
                    raise ModelError(f"{self.shown_url} answered with an error in place of a completion: {err}") from None
                except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:  # JSONDecodeError is a ValueError; RecursionError: JSON nested thousands deep
                    problem = f"replies that are not chat completions ({one_line(err, 120)})"
                else:
                    if choices:
                        for content, finish_reason, reasoning in choices:
                            result.add(content, finish_reason, reasoning)
                        result.usage += usage
                        if usage.prompt_tokens:
                            fit.prompt_tokens = usage.prompt_tokens  # exact, for samples filled in below
                        return
                    problem = "replies with no choices"
                if attempt < self.max_retries:
                    result.retries += 1
                    await asyncio.sleep(min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2**attempt) * (1 - 0.25 * random.random()))
            raise ModelError(f"{self.shown_url} kept sending {problem} ({self.max_retries + 1} tries); is it an OpenAI-compatible endpoint?")

        await one(params.n, params.seed)
        missing = params.n - len(result.texts)
        if missing > 0:
            # The server ignored `n` (llama.cpp does): ask for the rest one by one, concurrently,
            # each with its own seed so seeded samples still differ.
            start = len(result.texts)
            seeds = [None if params.seed is None else params.seed + start + i for i in range(missing)]
            await asyncio.gather(*(one(1, seed) for seed in seeds))
        return result

    async def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]:
        """Yield content deltas as the server sends them (server-sent events)."""
        import openai

        params = params or SamplingParams()
        messages = self.prepare(messages)
        wire = to_openai_messages(messages)
        async with self._semaphore():
            await self._ask_context()
            fit = _Fit(_estimate_prompt_tokens(wire))
            events, _ = await self._create(lambda: self._request(wire, params, 1, params.seed, fit), fit, stream=True)
            # Bounded as a whole: a server that never ends its stream (or trickles it) is cut off
            # after --request-timeout seconds or MAX_STREAM_CHARS characters, whichever comes first.
            loop = asyncio.get_running_loop()
            deadline, received = loop.time() + self.timeout, 0
            chunks = events.__aiter__()
            try:
                while True:
                    try:
                        chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, deadline - loop.time()))
                    except StopAsyncIteration:
                        break
                    except asyncio.TimeoutError:
                        raise ModelError(f"the stream from {self.shown_url} did not end within {self.timeout:g}s; cut off") from None
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if piece:
                        received += len(piece)
                        if received > MAX_STREAM_CHARS:
                            raise ModelError(f"the stream from {self.shown_url} went past {MAX_STREAM_CHARS:,} characters; cut off")
                        yield piece
            except (openai.OpenAIError, ValueError, TypeError, AttributeError, RecursionError) as err:  # transport failures, a malformed or absurdly nested event
                raise ModelError(f"the stream from {self.shown_url} broke off: {root_cause(err)}") from None
            finally:
                await events.close()

    # ------------------------------------------------------------------ errors
    async def _model_error(self, err: Exception) -> ModelError:
        """Turn a client error into one actionable line; the API key never appears in it."""
        import openai

        url = self.shown_url
        # The aiohttp transport reports a refused or unresolvable connection as a connect timeout:
        # a timeout whose innermost cause is a socket error other than a timeout is a connection failure.
        root = innermost(err)
        never_connected = isinstance(root, OSError) and not isinstance(root, TimeoutError)
        if isinstance(err, openai.APITimeoutError) and not never_connected:
            text = f"{url} did not answer within {self.timeout:g}s (tried {self.max_retries + 1} times); is the server overloaded?"
        elif isinstance(err, openai.APIConnectionError):
            text = f"cannot reach {url}: {root_cause(err)}; is the server running?"
        elif isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            text = f"the server at {url} rejected the API key (HTTP {err.status_code}); check ${self.api_key_env}"
        elif isinstance(err, openai.NotFoundError):
            text = await self._not_found_message()
        elif isinstance(err, openai.RateLimitError):
            text = f"{url} kept refusing with HTTP 429 (rate limit) after {self.max_retries} retries; lower the concurrency or try later"
        elif isinstance(err, openai.APIStatusError):
            retried = f" after {self.max_retries} retries" if err.status_code >= 500 else ""
            text = f"{url} answered HTTP {err.status_code}{retried}: {server_message(err)}"
        else:
            text = f"request to {url} failed: {err}"
        return ModelError(one_line(scrub_text(text.replace(self._api_key, "***")), 400))

    async def _not_found_message(self) -> str:
        """A 404 is usually a wrong model name; say which models the server does serve."""
        try:
            listing = await self._client().models.list()
            names = [m.id for m in listing.data]
        except Exception:  # the listing is only a hint; without it the message is still useful
            names = []
        if names and self.model not in names:
            shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
            return f"model {self.model!r} not found at {self.shown_url}; the server lists: {shown}"
        return (
            f"{self.shown_url}/chat/completions answered HTTP 404 for model {self.model!r}; "
            "check the model name and that the base URL ends in /v1"
        )
