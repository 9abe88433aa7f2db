"""TED Space: chat with a student model with or without an experience library.

Runs as a Hugging Face Space and locally (`python space/app.py` or `ted space`). Settings come
from the environment (Space variables and secrets):
  TED_STUDENT            student spec as in the CLI: `local` (default: Qwen2.5-Coder-0.5B-Instruct on CPU),
                         `openai:MODEL@URL` (key in the OPENAI_API_KEY secret) or `hf:MODEL`
  TED_SPACE_LIBRARIES    comma-separated library references offered besides the shipped ones:
                         Hub ids `org/name` (or `org/name@v2` to preselect a version) or local paths
  TED_SPACE_<LIMIT>      the limits in tedspace.Limits, e.g. TED_SPACE_MAX_IMAGES=2
  GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   where to listen (127.0.0.1:7860 by default)
A deployed Space (`ted space deploy`) also has space_settings.json: defaults for these variables.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from tedspace import (
    NONE,
    NOTICE,
    Catalog,
    InputProblem,
    Limits,
    Student,
    block_html,
    build_messages,
    check_input,
    citations,
    history_messages,
    interleave,
    settings,
    short_error,
    shown,
)

from ted.control_tokens import special_tokens
from ted.errors import TedError
from ted.library import Library, check_library
from ted.redact import scrub_logs
from ted.models.base import SamplingParams

TITLE = "TED · try an experience library"
INTRO = """\
# TED: what does an experience library change?

**TED** (training-free experience distillation) makes a frozen *student* model better without
touching its weights: a stronger *teacher* watches the student solve a few problems and writes a
small library of general lessons, the **experiences**, which go into the student's system prompt.

Pick a library, ask a question (you can attach an image if the student reads images), and tick
**Compare** to see the same question answered with and without the library, side by side.
The student cites the experiences it used as `[E#]`; they are highlighted under *Experience block*.
"""
CSS = """
.ted-block { white-space: pre-wrap; font-size: 0.85rem; max-height: 24rem; overflow-y: auto; }
.ted-block mark.ted-cited { background: #fde68a; color: #1f2937; border-radius: 3px; padding: 0 2px; }
.ted-summary { font-size: 0.9rem; }
"""
LIB_SIDE, BASE_SIDE = "lib", "base"
# The input box swaps its send button for a stop button while a reply is being written.
ASKING = gr.MultimodalTextbox(value=None, submit_btn=False, stop_btn=True)
READY = gr.MultimodalTextbox(submit_btn=True, stop_btn=False)


def build(student: Student, catalog: Catalog, limits: Limits) -> gr.Blocks:
    """The page: library picker, one chat (two when comparing), the injected block, settings."""

    def library_label(key: str) -> str:
        return "Student, no library" if key == NONE else f"Student + {catalog.entry(key).label.split(' · ')[0]}"

    def preview(key: str, version: str | None) -> str:
        try:
            return block_html(catalog.library(key, version))
        except TedError as err:
            gr.Warning(short_error(err))
            return f"<p>{NOTICE}{short_error(err)}</p>"

    def pick_library(key: str) -> tuple[Any, ...]:
        """A new library starts a new conversation: earlier answers were given under another prompt."""
        versions, default = catalog.versions(key)
        version = gr.Dropdown(choices=versions, value=default, interactive=len(versions) > 1)
        return version, preview(key, default), gr.Chatbot(value=[], label=library_label(key)), []

    def toggle_compare(compare: bool) -> tuple[Any, ...]:
        return gr.Chatbot(value=[]), gr.Chatbot(value=[], visible=compare)

    def take(message: dict[str, Any] | None, key: str, version: str | None, compare: bool) -> tuple[str, list[str], Library | None]:
        """The question, its images and the library to inject; a TedError says what to change."""
        text = (message or {}).get("text") or ""
        files = list((message or {}).get("files") or [])
        special = special_tokens(student.model)
        check_input(text, files, limits, student.supports_images, special)
        library = catalog.library(key, version)
        if library is not None:
            check_library(library, special)  # the student's own special tokens, beyond the maintained list
        if compare and library is None:
            raise InputProblem("Pick a library to compare with the plain student.")
        return text, files, library

    def validate(message: dict[str, Any] | None, _lib: Any, _base: Any, key: str, version: str | None, compare: bool, *_: Any) -> list[Any]:
        """Runs before a question is queued: a refusal is shown on the box (or the library picker),
        which keeps its text, and nothing is sent to the model (API callers get the same message)."""
        verdicts = [gr.validate(True, "")] * 8  # one per input of `respond`, in order
        try:
            take(message, key, version, compare)
        except InputProblem as err:
            verdicts[0] = gr.validate(False, short_error(err))
        except TedError as err:
            verdicts[3] = gr.validate(False, short_error(err))
        return verdicts

    async def respond(
        message: dict[str, Any] | None,
        chat_lib: list[dict[str, Any]],
        chat_base: list[dict[str, Any]],
        key: str,
        version: str | None,
        compare: bool,
        temperature: float,
        max_tokens: float,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the reply (two replies when comparing) into the chats, then mark the cited experiences."""
        try:
            text, files, library = take(message, key, version, compare)
        except TedError as err:  # the validator refused it already; this covers a change in between
            raise gr.Error(short_error(err)) from None
        params = SamplingParams(temperature=float(temperature), max_tokens=max(1, min(int(max_tokens), limits.max_new_tokens)))
        sides = {LIB_SIDE: (chat_lib or [], library)}
        if compare:
            sides[BASE_SIDE] = (chat_base or [], None)
        user = {"role": "user", "content": [*({"path": path} for path in files), *([text] if text else [])]}
        chats = {side: [*chat, user, {"role": "assistant", "content": "…"}] for side, (chat, _) in sides.items()}
        streams = {
            side: student.stream(build_messages(lib, history_messages(chat, limits.history_messages), text, files), params)
            for side, (chat, lib) in sides.items()
        }
        replies = dict.fromkeys(sides, "")

        def update(box: Any = None, cited: list[str] | None = None) -> tuple[Any, ...]:
            """Outputs: the box (emptied once, when the question is taken), both chats, and the block (once the cited IDs are known)."""
            shown = gr.skip() if cited is None else block_html(library, cited)
            return gr.skip() if box is None else box, chats[LIB_SIDE], chats.get(BASE_SIDE, chat_base), shown

        yield update(box=ASKING)
        async for side, item in interleave(streams):
            if isinstance(item, str):
                replies[side] += item
            elif isinstance(item, BaseException):
                replies[side] = (replies[side] + "\n\n" if replies[side] else "") + NOTICE + short_error(item)
            elif not replies[side].strip():
                replies[side] = NOTICE + "the student returned an empty reply; try again or raise the max new tokens"
            chats[side][-1] = {"role": "assistant", "content": shown(replies[side]) or "…"}
            yield update()
        yield update(cited=citations(replies[LIB_SIDE], library))

    async def chat(
        question: str,
        library: str = catalog.default(),
        version: str | None = None,
        compare: bool = False,
        temperature: float = 0.7,
        max_tokens: int = 256,
    ) -> dict[str, Any]:
        """Ask the student one text question with a library (`none`: the plain student) and, with
        `compare`, without it too. Returns `reply`, `baseline` (null unless comparing) and `cited`
        (the experience IDs the reply cites). The same checks and limits as the page."""
        try:
            text, _, chosen = take({"text": question, "files": []}, library, version, compare)
        except TedError as err:
            raise gr.Error(short_error(err)) from None
        params = SamplingParams(temperature=float(temperature), max_tokens=max(1, min(int(max_tokens), limits.max_new_tokens)))
        sides = {LIB_SIDE: chosen, **({BASE_SIDE: None} if compare else {})}
        streams = {side: student.stream(build_messages(lib, [], text, []), params) for side, lib in sides.items()}
        replies = dict.fromkeys(sides, "")
        async for side, item in interleave(streams):
            if isinstance(item, BaseException):
                raise gr.Error(short_error(item))
            if isinstance(item, str):
                replies[side] += item
        return {"reply": replies[LIB_SIDE], "baseline": replies.get(BASE_SIDE), "cited": citations(replies[LIB_SIDE], chosen)}

    default_key = catalog.default()
    default_versions, default_version = catalog.versions(default_key)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            library = gr.Dropdown(catalog.choices(), value=default_key, label="Experience library", scale=4, elem_id="library")
            # Custom values pass Gradio's own check so that API callers can name any version;
            # the catalog accepts only versions it listed.
            version = gr.Dropdown(
                default_versions,
                value=default_version,
                label="Version",
                elem_id="version",
                interactive=len(default_versions) > 1,
                allow_custom_value=True,
                scale=1,
            )
            compare = gr.Checkbox(value=False, label="Compare with and without the library", scale=2, elem_id="compare")
        with gr.Row(equal_height=True):
            chat_lib = gr.Chatbot(
                label=library_label(default_key),
                height=420,
                elem_id="chat-lib",
                feedback_options=None,
                placeholder="Ask a question below or pick an example; the reply streams in as the student writes it.",
            )
            chat_base = gr.Chatbot(label="Student, no library", height=420, elem_id="chat-base", visible=False, feedback_options=None)
        box = gr.MultimodalTextbox(
            placeholder="Ask the student a question…",
            file_types=["image"],
            file_count="multiple",
            sources=["upload"],
            show_label=False,
            max_plain_text_length=1_000_000,  # pasted text stays text, so the length check can say what is wrong
            elem_id="ask",
        )
        examples_label, examples = student.examples
        gr.Examples(examples, inputs=box, label=examples_label)
        with gr.Accordion("Experience block injected into the system prompt", open=False):
            block = gr.HTML(preview(default_key, default_version), elem_id="block")
        with gr.Accordion("Settings", open=False):
            temperature = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature")
            max_tokens = gr.Slider(16, limits.max_new_tokens, value=min(256, limits.max_new_tokens), step=16, label="Max new tokens")
            gr.ClearButton([box, chat_lib, chat_base], value="New conversation")
        gr.Markdown(f"Student: {student.describe()}. Replies are generated live; nothing is stored.")

        library.change(pick_library, library, [version, block, chat_lib, chat_base], api_visibility="private")
        version.change(preview, [library, version], block, api_visibility="private")
        compare.change(toggle_compare, compare, [chat_lib, chat_base], api_visibility="private")
        answer = box.submit(
            respond,
            [box, chat_lib, chat_base, library, version, compare, temperature, max_tokens],
            [box, chat_lib, chat_base, block],
            api_name="chat_ui",  # the page's event (images, history); programs use the typed /chat
            api_visibility="undocumented",
            validator=validate,
        )
        gr.api(chat, api_name="chat")
        answer.then(lambda: READY, None, box, api_visibility="private")
        box.stop(lambda: READY, None, box, cancels=[answer], api_visibility="private")
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scrub_logs()  # request URLs in httpx's INFO lines may hold credentials
    try:
        env = settings()
        limits = Limits.from_env(env)
        student = Student.from_env(env)
        catalog = Catalog.from_env(env)
        student.warm()
    except TedError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    demo = build(student, catalog, limits)
    demo.launch(
        max_file_size=int(limits.max_image_mb * 1_000_000),  # bytes: Gradio cannot parse "0.5mb"
        css=CSS,
        theme=gr.themes.Default(primary_hue="emerald"),
    )


if __name__ == "__main__":
    main()
