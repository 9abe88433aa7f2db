"""The Space through its public API, end to end over real protocols:

gradio_client → space/app.py (its own process) → recording proxy → llama_cpp.server (bundled model)

The proxy forwards every request unchanged and keeps a copy of each chat request body, so the
tests read exactly what reached the model's server. Hub libraries come from the local
Hub-compatible server (hub_server.py) through the real huggingface_hub client.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError
from tests.integration.hub_server import HubServer, Token
from PIL import Image

from ted import prompts
from ted.hub import push_library
from ted.library import Library
from tests.space_app import running_space

pytestmark = pytest.mark.integration

SECRET = "sk-space-test-0123456789abcdef"
BLOCK_HEADING = "## Experience library"
HUB_REPO = "alice/space-lib"
WRITE, READ = "hf_space_write", "hf_space_read"


class RecordingProxy:
    """An HTTP proxy to one upstream that records chat request bodies and can be told to fail.

    In failing mode it answers 500 with the request's Authorization header echoed in the error,
    the worst case of a server leaking a key into an error message.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.chat_requests: list[dict[str, Any]] = []
        self.windows: list[tuple[float, float]] = []  # (arrived, answered) of each chat request
        self.failing = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.endswith("/chat/completions"):
                    self._forward(body)
                    return
                arrived = time.monotonic()
                try:
                    self._chat(body)
                finally:
                    proxy.windows.append((arrived, time.monotonic()))

            def _chat(self, body: bytes) -> None:
                proxy.chat_requests.append(json.loads(body))
                if not proxy.failing:
                    self._forward(body)
                    return
                error = {"error": {"message": f"upstream exploded; auth was {self.headers.get('Authorization')}"}}
                payload = json.dumps(error).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes | None) -> None:
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                with httpx.Client(timeout=300) as client, client.stream(
                    self.command, proxy.upstream + self.path, content=body, headers=headers
                ) as response:
                    self.send_response(response.status_code)
                    for name, value in response.headers.items():
                        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                    for chunk in response.iter_raw():
                        self.wfile.write(chunk)
                        self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxy(llama_server: Any) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(llama_server.base_url.removesuffix("/v1"))
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Library]:
    lib = Library(name="space-test", version="1.2.0")
    lib.add("Restate what the question asks for before answering.", step=1)
    lib.add("Check an arithmetic result with the inverse operation.", step=1)
    folder = tmp_path_factory.mktemp("space_library")
    lib.save(folder / "library.json")
    return str(folder), lib


@pytest.fixture(scope="module")
def hub_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, dict[str, Library]]]:
    """Two published versions of one library on a local Hub."""
    with HubServer(tmp_path_factory.mktemp("hub"), {WRITE: Token("alice", "write"), READ: Token("bob", "read")}) as hub:
        published = {}
        for version, texts in (("v1", ["Work slowly."]), ("v2", ["Work slowly.", "Name the unit of every quantity."])):
            lib = Library(name="space-hub", version=version.removeprefix("v"))
            for text in texts:
                lib.add(text, step=1)
            push_library(lib, HUB_REPO, version=version, token=WRITE, endpoint=hub.url)
            published[version] = lib
        yield hub, published


@pytest.fixture(scope="module")
def space(
    proxy: RecordingProxy,
    library: tuple[str, Library],
    hub_versions: tuple[HubServer, dict[str, Library]],
    llama_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Client]:
    folder = tmp_path_factory.mktemp("space_app")
    env = {
        "TED_STUDENT": f"openai:{llama_server.model}@{proxy.url}/v1",
        "TED_SPACE_LIBRARIES": f"{library[0]},{HUB_REPO}",
        "OPENAI_API_KEY": SECRET,
        "TED_SPACE_CONCURRENCY": "1",
        "HF_ENDPOINT": hub_versions[0].url,
        "HF_TOKEN": READ,
        "HF_HOME": str(folder / "hf-home"),
        "HF_HUB_CACHE": str(folder / "hf-cache"),
    }
    with running_space(env, folder / "app.log") as url:
        yield Client(url, verbose=False, download_files=False)


@pytest.fixture(autouse=True)
def fresh_proxy(proxy: RecordingProxy) -> None:
    proxy.chat_requests.clear()
    proxy.windows.clear()
    proxy.failing = False


def ask(
    client: Client, text: str, key: str = "none", compare: bool = False, files: list[Path] = (), version: str | None = None
) -> tuple[Any, ...]:
    message = {"text": text, "files": [handle_file(path) for path in files]}
    return client.predict(message, [], [], key, version, compare, 0.0, 16, api_name="/chat_ui")


def reply_text(chat: list[dict[str, Any]]) -> str:
    assert chat and chat[-1]["role"] == "assistant", chat
    return "".join(part.get("text", "") for part in chat[-1]["content"])


def system_text(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    return first["content"]


def test_no_library_sends_no_experience_block(space: Client, proxy: RecordingProxy) -> None:
    result = ask(space, "What is 2 + 3?")
    assert reply_text(result[1]).strip()
    assert len(proxy.chat_requests) == 1
    request = proxy.chat_requests[0]
    assert system_text(request) == prompts.render("solve", library="")
    assert all(BLOCK_HEADING not in json.dumps(m) for m in request["messages"])
    assert request["messages"][-1] == {"role": "user", "content": "What is 2 + 3?"}


def test_library_sends_exactly_the_rendered_block(space: Client, proxy: RecordingProxy, library: tuple[str, Library]) -> None:
    key, lib = library
    result = ask(space, "What is 2 + 3?", key=key)
    assert reply_text(result[1]).strip()
    assert len(proxy.chat_requests) == 1
    system = system_text(proxy.chat_requests[0])
    assert system == prompts.render("solve", library=lib.render())
    assert system.count(lib.render()) == 1 and system.count(BLOCK_HEADING) == 1
    # The accordion shows the same block the model received.
    assert "[E1] Restate what the question asks for before answering." in result[3]


def test_compare_returns_two_replies_one_with_the_block(space: Client, proxy: RecordingProxy, library: tuple[str, Library]) -> None:
    key, lib = library
    result = ask(space, "Name a prime number.", key=key, compare=True)
    with_lib, without = reply_text(result[1]), reply_text(result[2])
    assert with_lib.strip() and without.strip()
    assert not with_lib.startswith("⚠️") and not without.startswith("⚠️")
    systems = sorted(system_text(r) for r in proxy.chat_requests)
    assert systems == sorted([prompts.render("solve", library=lib.render()), prompts.render("solve", library="")])


def test_the_typed_chat_api_takes_keyword_parameters(space: Client, proxy: RecordingProxy, library: tuple[str, Library]) -> None:
    """`/chat` for programs: named, typed parameters (gradio_client's API view says so), one JSON
    answer with the reply, the baseline when comparing and the cited IDs; refusals as errors."""
    key, lib = library
    info = space.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]
    params = {p["parameter_name"]: p for p in info["parameters"]}
    assert list(params) == ["question", "library", "version", "compare", "temperature", "max_tokens"]
    assert params["question"]["type"]["type"] == "string" and params["compare"]["type"]["type"] == "boolean"
    assert not params["compare"]["parameter_has_default"] or params["compare"]["parameter_default"] is False
    answer = space.predict(question="Name a prime number.", library=key, compare=True, temperature=0.0, max_tokens=16, api_name="/chat")
    assert set(answer) == {"reply", "baseline", "cited"} and answer["reply"].strip() and answer["baseline"].strip()
    assert set(answer["cited"]) <= set(lib.ids())
    systems = sorted(system_text(r) for r in proxy.chat_requests)
    assert systems == sorted([prompts.render("solve", library=lib.render()), prompts.render("solve", library="")])
    plain = space.predict(question="What is 2 + 3?", library="none", max_tokens=16, api_name="/chat")
    assert plain["baseline"] is None and plain["cited"] == []
    with pytest.raises(Exception, match="Pick a library"):
        space.predict(question="What is 2 + 3?", library="none", compare=True, api_name="/chat")


def test_uploaded_image_reaches_the_backend(space: Client, proxy: RecordingProxy, tmp_path: Path) -> None:
    image = Image.new("RGB", (6, 4), (200, 30, 30))
    image.putpixel((0, 0), (0, 0, 255))
    path = tmp_path / "red.png"
    image.save(path)
    result = ask(space, "What colour is this?", files=[path])
    assert result[1][-2]["role"] == "user" and any(part.get("type") == "file" for part in result[1][-2]["content"])
    assert len(proxy.chat_requests) == 1
    content = proxy.chat_requests[0]["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert [part["text"] for part in content if part["type"] == "text"] == ["What colour is this?"]
    assert len(urls) == 1 and urls[0].startswith("data:image/png;base64,")
    received = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))).convert("RGB")
    assert received.size == (6, 4) and received.tobytes() == image.tobytes()
    assert reply_text(result[1]).strip()


def test_limits_refuse_politely_before_calling_the_model(space: Client, proxy: RecordingProxy, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="message: Your message is 4,001 characters long; the limit here is 4,000"):
        ask(space, "x" * 4001)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (2, 2)).save(paths[-1])
    with pytest.raises(ValidationError, match="You attached 5 images; the limit is 4"):
        ask(space, "Compare these", files=paths)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image at all")
    with pytest.raises(Exception, match="Invalid file type|not an image"):  # Gradio's own file-type check or ours
        ask(space, "What is this?", files=[fake])
    assert proxy.chat_requests == []


def test_backend_error_is_one_short_line_without_the_key(space: Client, proxy: RecordingProxy) -> None:
    proxy.failing = True
    result = ask(space, "What is 2 + 3?")
    reply = reply_text(result[1])
    assert reply.startswith("⚠️") and "HTTP 500" in reply
    assert SECRET not in reply and "Traceback" not in reply and "\n" not in reply
    assert len(reply) < 320
    assert len(proxy.chat_requests) >= 1  # the request did reach the (failing) server


def test_hub_library_versions_are_fetched_validated_and_injected(
    space: Client, proxy: RecordingProxy, hub_versions: tuple[HubServer, dict[str, Library]]
) -> None:
    hub, published = hub_versions
    for version in ("v1", "v2"):
        ask(space, "What is 2 + 3?", key=HUB_REPO, version=version)
        assert system_text(proxy.chat_requests[-1]) == prompts.render("solve", library=published[version].render())
    ask(space, "What is 2 + 3?", key=HUB_REPO)  # no version: the newest
    assert system_text(proxy.chat_requests[-1]) == prompts.render("solve", library=published["v2"].render())
    count = len(proxy.chat_requests)
    with pytest.raises(ValidationError, match="key: alice/space-lib has no version 'v9'"):
        ask(space, "What is 2 + 3?", key=HUB_REPO, version="v9")
    with pytest.raises(Exception, match="400 Bad Request"):  # a path is never accepted as a library (Gradio refuses it first)
        ask(space, "What is 2 + 3?", key="/etc")
    assert len(proxy.chat_requests) == count
    assert ("GET", "resolve") in hub.requests  # the library files did come over HTTP


def test_the_queue_answers_one_question_at_a_time(space: Client, proxy: RecordingProxy) -> None:
    """TED_SPACE_CONCURRENCY=1: of two questions sent together, the second reaches the model only after the first is answered."""
    jobs = [
        space.submit({"text": f"Count to {n}.", "files": []}, [], [], "none", None, False, 0.0, 32, api_name="/chat_ui")
        for n in (3, 4)
    ]
    for job in jobs:
        assert reply_text(job.result()[1]).strip()
    (_, first_out), (second_in, _) = sorted(proxy.windows)
    assert len(proxy.windows) == 2 and second_in >= first_out
