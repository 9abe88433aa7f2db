"""A GGUF model run in process by llama.cpp (llama-cpp-python): `gguf:PATH` and the `local…` models.

`llama_cpp.Llama` is not thread-safe, so every call holds one lock, and runs in a worker thread
so the event loop keeps serving other requests (teacher calls, HTTP) meanwhile.

Gemma: llama.cpp's built-in "gemma" chat format silently drops system messages (Gemma has no
system role). TED puts its experience library in the system prompt, so for Gemma we use
`GEMMA_CHAT_CONFIG` instead: the same turn markup, with the system text prepended to the first
user turn, as Gemma 3's own template does. Serve the bundled model with the same template:
`python -m llama_cpp.server --model PATH --chat_format hf-tokenizer-config
--hf_tokenizer_config_path FILE` with FILE holding `GEMMA_CHAT_CONFIG` as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ted.errors import ModelError
from ted.files import cache_dir
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, Usage
from ted.models.local import INSTALL_HINT
from ted.models.native import ensure_runs, local_threads, quiet_waits, rebuild_hint

GEMMA_CHAT_TEMPLATE = (
    # Content may be a string or OpenAI content parts; the model reads text only, so only
    # text parts are rendered (image parts are dropped).
    "{% macro text(content) %}{% if content is string %}{{ content }}"
    "{% else %}{% for part in content if part.type == 'text' %}{{ part.text }}{% endfor %}{% endif %}{% endmacro %}"
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages if m.role == 'system' %}{% set ns.system = ns.system + text(m.content) + '\n\n' %}{% endfor %}"
    "{% for m in messages if m.role != 'system' %}"
    "{% if loop.last and m.role == 'assistant' and not m.content %}"
    "{% if loop.first and ns.system %}{{ '<start_of_turn>user\n' + ns.system | trim + '<end_of_turn>\n' }}{% endif %}"
    "{{ '<start_of_turn>model\n' }}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else 'user') + '\n' }}"
    "{% if loop.first %}{{ ns.system }}{% endif %}"
    "{{ text(m.content) }}{{ '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
)
# In the shape llama-cpp-python's "hf-tokenizer-config" chat format reads (eos_token is the stop string).
GEMMA_CHAT_CONFIG = {"chat_template": GEMMA_CHAT_TEMPLATE, "bos_token": "<bos>", "eos_token": "<end_of_turn>"}


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send the process's file descriptor 2 to /dev/null for a moment.

    Why: while a model loads, llama.cpp writes messages (e.g. about its SWA cache) with C stdio,
    past Python and its own log callback, into the middle of the progress display.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LlamaCppChatModel(BaseChatModel):
    """A GGUF chat model in this process. Text only.

    `chat_format`: None uses the GGUF's own chat template; a GGUF without one whose
    architecture is Gemma gets `GEMMA_CHAT_CONFIG` (so the bundled model needs no flag);
    "gemma" forces that template; any other name is passed to llama.cpp as is.
    `extra` keyword arguments go to `llama_cpp.Llama` (e.g. `n_batch`, `n_gpu_layers`).
    """

    backend = "llama_cpp"

    def __init__(
        self,
        spec: str,
        path: str,
        max_concurrency: int = 8,
        chat_format: str | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        **extra: Any,
    ) -> None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ModelError(f"GGUF file not found: {file}; pass gguf:PATH to an existing .gguf file, or use `local`")
        super().__init__(spec, file.name.removesuffix(".gguf"), max_concurrency)
        self.path = str(file)
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.extra = extra
        self.supports_images = False
        self._lock = threading.Lock()
        self._llm: Any = None
        self._special: tuple[str, ...] | None = None

    def _load(self) -> Any:
        """Load on first use (call with the lock held): constructing a model costs seconds."""
        if self._llm is None:
            os.environ.update(quiet_waits(os.environ))  # read once, when llama.cpp's OpenMP runtime loads
            try:
                from llama_cpp import Llama, llama_chat_format
            except ImportError:
                raise ModelError(f"llama.cpp is not installed: {INSTALL_HINT}") from None
            except (OSError, RuntimeError) as err:  # the package is there but its native library is not usable
                raise ModelError(f"llama.cpp's native library does not load ({err}); {rebuild_hint()}") from None
            ensure_runs(self.path, cache_dir())  # a build that would die with SIGILL fails here, as one line
            try:
                with _native_stderr_silenced():  # llama.cpp prints some load messages straight to fd 2
                    llm = Llama(
                        model_path=self.path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads or local_threads(),
                        chat_format=None if self.chat_format == "gemma" else self.chat_format,
                        verbose=False,
                        **self.extra,
                    )
            except ValueError as err:
                raise ModelError(f"llama.cpp cannot load {self.path}: {err}") from None
            metadata = llm.metadata or {}
            untemplated_gemma = (
                self.chat_format is None
                and "tokenizer.chat_template" not in metadata
                and metadata.get("general.architecture", "").startswith("gemma")
            )
            if self.chat_format == "gemma" or untemplated_gemma:
                llm.chat_handler = llama_chat_format.hf_tokenizer_config_to_chat_completion_handler(GEMMA_CHAT_CONFIG)
            self._llm = llm
        return self._llm

    def special_tokens(self) -> tuple[str, ...]:
        """The GGUF vocabulary's control tokens (turn markers, BOS/EOS, reserved ones)."""
        if self._special is None:
            import llama_cpp

            with self._lock:
                model = self._load()._model
                self._special = tuple(
                    model.token_get_text(i)
                    for i in range(model.n_vocab())
                    if model.token_get_attr(i) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                )
        return self._special

    def _request(self, messages: Sequence[Message], params: SamplingParams, seed: int | None) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.text} for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "seed": seed,
        }
        if params.json_schema is not None:
            # llama.cpp compiles the schema to a grammar: the reply is valid JSON by construction.
            request["response_format"] = {"type": "json_object", "schema": params.json_schema}
        return request

    def _locked(self, work: Callable[[Any], Any]) -> Any:
        with self._lock:
            llm = self._load()
            try:
                return work(llm)
            except ValueError as err:  # llama.cpp's way of saying "prompt too long" and the like
                raise ModelError(f"{self.spec}: {err}") from None

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        result = ChatResult(texts=[], requests=0)
        for i in range(params.n):
            request = self._request(messages, params, None if params.seed is None else params.seed + i)
            reply = await asyncio.to_thread(self._locked, lambda llm, r=request: llm.create_chat_completion(**r))
            choice = reply["choices"][0]
            result.add(choice["message"]["content"], choice.get("finish_reason"))
            usage = reply.get("usage") or {}
            result.usage += Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
            result.requests += 1
        return result

    async def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]:
        """Yield text pieces as llama.cpp produces them; generation stops if the consumer stops."""
        params = params or SamplingParams()
        messages = self.prepare(messages)
        self.check_images(messages)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        done = object()
        cancelled = threading.Event()
        request = self._request(messages, params, params.seed)

        def produce(llm: Any) -> None:
            for chunk in llm.create_chat_completion(**request, stream=True):
                if cancelled.is_set():
                    break
                text = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if text:
                    loop.call_soon_threadsafe(pieces.put_nowait, text)

        def run() -> None:
            try:
                self._locked(produce)
            except BaseException as err:  # handed to the consumer, which re-raises it
                loop.call_soon_threadsafe(pieces.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, done)

        async with self._semaphore():
            worker = asyncio.ensure_future(asyncio.to_thread(run))
            try:
                while (item := await pieces.get()) is not done:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                cancelled.set()
                await worker

    async def aclose(self) -> None:
        await asyncio.to_thread(self._unload)

    def _unload(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
