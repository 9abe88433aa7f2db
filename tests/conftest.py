"""Shared fixtures.

`llama_server`: a real OpenAI-compatible `llama_cpp.server` serving the bundled Gemma 3 270M on
127.0.0.1, started once per test session. Use it for any integration test that needs an
OpenAI-compatible endpoint (the OpenAI backend, lm-eval's `local-chat-completions`, the CLI):

    def test_x(llama_server):
        model = load_model(llama_server.spec)          # "openai:gemma-3-270m@http://127.0.0.1:PORT/v1"
        url, name = llama_server                       # or unpack base URL and served model name

The server uses the Gemma turn format with the system prompt folded into the first user turn
(`ted.models.llama_cpp.GEMMA_CHAT_CONFIG`): llama.cpp's own "gemma" format drops system
messages, which would silently drop a TED library. It ignores `n` (returns one choice) and
serves any model name as its one model. Streaming requests are not cut short by concurrent
requests (`--interrupt_requests False`). Its log is in the session's temp dir, and the last
lines are shown if it fails to start.

`make test` runs the suite on several workers (`pytest -n N --dist loadgroup`, pytest-xdist). Each
worker is its own pytest session: its own temp folders (`tmp_path`), its own `llama_server`, its own
lm-eval request cache and datasets cache (`own_caches`). Tests that share a fixture built once per
module or per folder (a finished `ted reproduce` run, the reliability suite's reference run, a
started Space) are kept on one worker by `pytest_collection_modifyitems`, so the fixture is built once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import support
from tests.support.llama import LlamaServer, gemma_chat_format, serve_llama

# huggingface_hub sends LFS-mode files through Xet whenever hf_xet is installed; the local Hub
# server (tests/integration/hub_server.py) has no Xet CAS, so tests take the LFS path the Hub also
# accepts. Set before huggingface_hub is imported (it reads the switch at import time).
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


# Session fixtures of this file that each worker starts for itself: a server per worker costs a few
# seconds, running all their users on one worker would cost minutes.
PER_WORKER = frozenset({"llama_server"})


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup --no-loadscope-reorder` (make test): a test that uses a
    module- or folder-wide fixture of the suite joins the xdist group of the module or folder that
    defines it, so that fixture is built on one worker only; tests marked `first` (minutes of
    dependent work) are handed out first, then the groups, then the rest, so no long one starts last."""
    for item in items:
        shared = sorted(
            defs[-1].baseid
            for name, defs in item._fixtureinfo.name2fixturedefs.items()  # type: ignore[attr-defined]
            if defs and defs[-1].scope != "function" and defs[-1].baseid.startswith("tests/") and name not in PER_WORKER
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
            # xdist 3.8 puts the group into `item._nodeid`, which pytest 9.2 no longer reads (the id is
            # `item._id`), and the groups would be ignored: the same suffix, where pytest 9.2 reads it.
            if hasattr(item, "_id") and "@" not in item.nodeid:
                from _pytest.nodeid import coerce_node_id

                item._id = coerce_node_id(f"{item.nodeid}@{shared[0]}")
    items.sort(key=lambda item: (item.get_closest_marker("first") is None, item.get_closest_marker("xdist_group") is None))


@pytest.fixture(scope="session", autouse=True)
def own_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """lm-eval's request cache (else inside its installed package) and the datasets cache in this
    session's temp folder, for this process and every command it starts: parallel workers never
    share one. A test that needs a cache of its own still sets its own."""
    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LM_HARNESS_CACHE_PATH", str(root / "lm-eval"))
        patch.setenv("HF_DATASETS_CACHE", str(root / "datasets"))
        yield


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for "server unreachable" tests)."""
    return support.free_port()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Start `python -m llama_cpp.server` with the bundled model; yield its URL and model name."""
    workdir = tmp_path_factory.mktemp("llama_server")
    with serve_llama(workdir, *gemma_chat_format(workdir)) as server:
        yield server
