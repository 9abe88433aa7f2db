"""A local transformers model: text (causal LM) or vision-language (image-text-to-text).

Which kind is read from the model's config. Generation is batched: concurrent `chat` calls
that share sampling settings are decoded together (left padding), and a call's `n` samples are
rows of the same batch. While one batch decodes in a worker thread, new calls queue up and
become the next batch, so throughput grows with concurrency without a background task.

A model without a chat template gets `FALLBACK_CHAT_TEMPLATE`: the BOS token, then plain
"System: …", "User: …", "Assistant: …" turns separated by blank lines, ending in "Assistant:",
so base models still receive the system prompt (where TED puts its library).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ted.errors import ModelError
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, Usage, image_to_pil

FALLBACK_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for m in messages %}"
    "{{ m.role | capitalize }}: "
    "{% if m.content is string %}{{ m.content }}"
    "{% else %}{% for part in m.content %}{% if part.type == 'image' %}<image>{% else %}{{ part.text }}{% endif %}{% endfor %}"
    "{% endif %}{{ '\n\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(eq=False)
class _Job:
    """One `chat` call waiting for, or holding, its rows of a batch; `finished` resolves when decoded."""

    prompt: str
    images: list[Any]
    params: SamplingParams
    finished: asyncio.Future[None]
    result: ChatResult = field(default_factory=lambda: ChatResult(texts=[], requests=1))

    def batch_key(self) -> tuple[Any, ...]:
        """Jobs decode together only if they sample alike. A seeded job decodes alone, so
        its samples do not depend on what else happened to be in flight."""
        p = self.params
        return (p.temperature, p.max_tokens, bool(self.images), p.seed, id(self) if p.seed is not None else None)


# from_pretrained options that say where the files are, so they apply to config and tokenizer too.
HUB_OPTIONS = frozenset({"revision", "subfolder", "cache_dir", "token", "local_files_only", "gguf_file"})


class HFChatModel(BaseChatModel):
    """A transformers model in this process (a Hub ID or a local folder).

    `device_map` defaults to "auto" (accelerate) when a GPU is present, else the CPU.
    `extra` keyword arguments go to the model's `from_pretrained` (e.g. `attn_implementation`;
    `revision`, `gguf_file` and other HUB_OPTIONS also to the config's and tokenizer's).
    `batch_size` caps the rows of a batch, except that one call's `n` samples always decode
    together. `params.json_schema` is not enforced (no constrained decoding here): `chat_json`
    parses, mends and re-asks. `tokenizer` is the model's own, for exact library token budgets.
    """

    backend = "hf"

    def __init__(
        self,
        spec: str,
        model_id_or_dir: str,
        max_concurrency: int = 8,
        device_map: str | dict[str, Any] | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(spec, model_id_or_dir, max_concurrency)
        try:
            from transformers import AutoConfig
            from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        except ImportError:
            raise ModelError("transformers is not installed: pip install 'ted-distill[local]'") from None
        self.device_map = device_map
        self.dtype = dtype
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.extra = extra
        self.config = self._load(AutoConfig.from_pretrained)
        self.supports_images = self.config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        self._loading = threading.RLock()  # guards lazy loading of tokenizer/processor and weights
        self._generating = threading.Lock()  # one batch at a time on the model
        self._processor: Any = None
        self._tokenizer: Any = None
        self.hf_model: Any = None  # the transformers model, once loaded
        self._queue: list[_Job] = []
        self._turns: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # ------------------------------------------------------------------ loading
    def _load(self, loader: Any, **kwargs: Any) -> Any:
        """Call a `from_pretrained`, turning "not found / not downloadable" into one line."""
        hub = {k: v for k, v in self.extra.items() if k in HUB_OPTIONS}
        try:
            return loader(self.model, trust_remote_code=self.trust_remote_code, **hub, **kwargs)
        except ImportError as err:  # e.g. Qwen-VL processors need torchvision
            raise ModelError(f"transformers model {self.model!r} needs a missing package: {_first_line(err)}") from None
        except (OSError, ValueError) as err:
            reason = _first_line(err)
            raise ModelError(
                f"cannot load transformers model {self.model!r}: {reason} "
                "(pass hf:DIR for a local folder, or a Hub ID that is cached or downloadable)"
            ) from None

    def special_tokens(self) -> tuple[str, ...]:
        """The tokenizer's special and added-special tokens (turn markers, image placeholders)."""
        tok = self.tokenizer
        added = [t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if getattr(t, "special", False)]
        return tuple(dict.fromkeys([*tok.all_special_tokens, *added]))

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loaded without the weights)."""
        return self._text_side()

    def _text_side(self) -> Any:
        # Checked before locking: the event loop renders prompts here while a worker thread may
        # hold the lock for minutes loading weights.
        if self._tokenizer is not None:
            return self._tokenizer
        with self._loading:
            if self._tokenizer is not None:
                return self._tokenizer
            if self.supports_images:
                from transformers import AutoProcessor

                self._processor = self._load(AutoProcessor.from_pretrained)
                tokenizer = self._processor.tokenizer
            else:
                from transformers import AutoTokenizer

                tokenizer = self._load(AutoTokenizer.from_pretrained)
            tokenizer.padding_side = "left"  # decoder-only batches grow to the right
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer = tokenizer  # published last: a set _tokenizer is ready to use
            return tokenizer

    def load(self) -> Any:
        """Load tokenizer/processor and weights now (otherwise the first call does); returns the model."""
        with self._loading:
            if self.hf_model is not None:
                return self.hf_model
            import torch
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

            self._text_side()
            auto = AutoModelForImageTextToText if self.supports_images else AutoModelForCausalLM
            device_map = self.device_map or ("auto" if torch.cuda.is_available() else None)
            options = {k: v for k, v in self.extra.items() if k not in HUB_OPTIONS}
            self.hf_model = self._load(auto.from_pretrained, dtype=self.dtype, device_map=device_map, **options).eval()
            return self.hf_model

    # ------------------------------------------------------------------ prompts
    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The exact prompt string the model sees (chat template applied, generation prompt added)."""
        tokenizer = self._text_side()
        templater = self._processor if self.supports_images else tokenizer
        template = None if getattr(templater, "chat_template", None) else FALLBACK_CHAT_TEMPLATE
        if self.supports_images:
            conversation = [
                {"role": m.role, "content": [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.text}]}
                for m in messages
            ]
        else:
            conversation = [{"role": m.role, "content": m.text} for m in messages]
        return templater.apply_chat_template(
            conversation, chat_template=template, add_generation_prompt=True, tokenize=False
        )

    # ------------------------------------------------------------------ generation
    def _turn_lock(self) -> asyncio.Lock:
        """Whose turn it is to run a batch (one per event loop, like the base semaphore)."""
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns[0] is not loop:
            self._turns = (loop, asyncio.Lock())
        return self._turns[1]

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        if self._tokenizer is None:
            await asyncio.to_thread(self._text_side)
        # Rendering a prompt takes milliseconds: done here, calls started together queue together.
        loop = asyncio.get_running_loop()
        images = [image_to_pil(img) for m in messages for img in m.images]
        job = _Job(self.prompt_text(messages), images, params, loop.create_future())
        self._queue.append(job)
        await asyncio.sleep(0)  # let callers started in the same tick join this batch
        async with self._turn_lock():
            if job in self._queue:  # no earlier caller took it into their batch: lead one
                await asyncio.to_thread(self._run_batch, self._take_batch(job), loop)
        await job.finished  # already resolved, unless its batch leader was cancelled meanwhile
        return job.result

    def _take_batch(self, first: _Job) -> list[_Job]:
        """`first` plus queued jobs that sample alike, up to `batch_size` rows."""
        key, rows, batch = first.batch_key(), first.params.n, [first]
        self._queue.remove(first)
        for job in list(self._queue):
            if job.batch_key() == key and rows + job.params.n <= self.batch_size:
                batch.append(job)
                rows += job.params.n
                self._queue.remove(job)
        return batch

    def _run_batch(self, batch: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        failure: ModelError | None = None
        try:
            with self._generating:
                self._generate(batch)
        except Exception as err:  # every caller in the batch sees the failure, not just one
            failure = err if isinstance(err, ModelError) else ModelError(f"{self.spec}: generation failed: {err}")
        for job in batch:
            loop.call_soon_threadsafe(_settle, job.finished, failure)

    def _generate(self, batch: list[_Job]) -> None:
        import torch
        from transformers import set_seed

        model = self.load()
        tokenizer = self._text_side()
        rows = [job for job in batch for _ in range(job.params.n)]
        texts = [job.prompt for job in rows]
        if self.supports_images:
            images = [img for job in rows for img in job.images] or None
            inputs = self._processor(
                text=texts, images=images, padding=True, return_tensors="pt", add_special_tokens=False
            )
            inputs = inputs.to(model.device, dtype=model.dtype)  # casts only the float tensors (pixels)
        else:
            inputs = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False).to(model.device)
        params = batch[0].params
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature}
            if params.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        if params.seed is not None:
            set_seed(params.seed)
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=params.max_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
            )
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_len:]
        replies = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        stop_ids = _eos_ids(model, tokenizer)
        for row, (job, reply) in enumerate(zip(rows, replies)):
            generated, stopped = _generated_length(new_tokens[row].tolist(), stop_ids)
            job.result.add(reply, "stop" if stopped else "length")
            job.result.usage += Usage(int(prompt_counts[row]), generated)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _settle(finished: asyncio.Future[None], failure: ModelError | None) -> None:
    if not finished.done():  # its caller may have been cancelled
        if failure is None:
            finished.set_result(None)
        else:
            finished.set_exception(failure)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _generated_length(tokens: list[int], stop_ids: set[int]) -> tuple[int, bool]:
    """Tokens actually generated (up to and including the first end-of-sequence token), and
    whether the model stopped by itself rather than at the token limit."""
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return i + 1, True
    return len(tokens), False
