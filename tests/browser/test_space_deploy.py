"""`ted space deploy` end to end: the dry-run folder installs in a fresh venv with no index entry
for ted, `python DIR/app.py` serves it, headless Chromium chats with it against `llama_cpp.server`
(with and without a Hub library), its README's `gradio_client` example runs, and a real deploy to
the local Hub server makes one commit holding exactly the dry run's files.

**The fresh venv.** A new venv whose own site-packages is empty, with one `.pth` line appending
this environment's site-packages *after* it. A plain path line does not run the `.pth` files of
that folder, so the checkout's editable ted is not importable there (the test checks that
`import ted` fails outside the Space folder): ted can only come from the folder. `pip install -r
requirements.txt gradio==<sdk_version>` (what the Spaces builder runs) then finds most packages
already satisfied and installs only what is missing: seconds, where a full install would download
some 80 packages. `--system-site-packages` would not do this: a venv made from this venv's python
gets the *base* interpreter's site, which has none of the dependencies. That the requirements also
resolve on a clean machine is checked apart, by `pip install --dry-run --ignore-installed`
against the package index (metadata only, about half a minute).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import expect, sync_playwright

from ted.hub import push_library
from ted.library import Library
from tests.integration.hub_server import HubServer, Token
from tests.browser.test_space_browser import CHROMIUM, CHROMIUM_ARGS, OUTPUT, REPLY_TIMEOUT_MS
from tests.processes import stop

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WRITE = "hf_deploy_write"
LIBRARY = "alice/deploy-lib"
SPACE = "alice/ted-demo"
KEY = "sk-deploy-test-0123456789"
RUNNING = re.compile(r"Running on local URL:\s+(http://\S+)")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub"), {WRITE: Token("alice", "write")}) as server:
        lib = Library(name="deploy-demo")
        lib.add("Restate what the question asks for before answering.", step=1)
        lib.add("Check an arithmetic result with the inverse operation.", step=1)
        push_library(lib, LIBRARY, version="v1", token=WRITE, endpoint=server.url)
        yield server


@pytest.fixture(scope="module")
def env(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("hf")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TED_", "OPENAI_", "GRADIO_"))}
    return {**base, "HF_ENDPOINT": hub.url, "HF_TOKEN": WRITE, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False", "NO_COLOR": "1"}  # fmt: skip


def deploy(env: dict[str, str], llama_server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ted.cli", "space", "deploy", SPACE, "--student", llama_server.spec, "--library", f"{LIBRARY}@v1", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def folder(env: dict[str, str], llama_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dry") / "space"
    done = deploy(env, llama_server, "--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "set the Space secret(s) TED_STUDENT yourself" in done.stdout
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "deploy-listing.txt").write_text("".join(f"{p.relative_to(out)}\n" for p in sorted(out.rglob("*")) if p.is_file()))
    return out


def front_matter(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])


def test_the_folder_is_a_complete_space(folder: Path, llama_server: Any) -> None:
    meta = front_matter(folder)
    assert (meta["sdk"], meta["app_file"], meta["python_version"], meta["suggested_hardware"]) == ("gradio", "app.py", "3.12", "cpu-basic")
    assert meta["datasets"] == [LIBRARY] and len(meta["short_description"]) <= 60
    requirements = (folder / "requirements.txt").read_text()
    assert not re.search(r"(?m)^(ted|ted-distill|gradio|torch)\b", requirements)
    assert (folder / "ted" / "hub.py").read_bytes() == (Path(__file__).parents[2] / "ted" / "hub.py").read_bytes()
    assert json.loads((folder / "space_settings.json").read_text()) == {"TED_SPACE_LIBRARIES": f"{LIBRARY}@v1"}
    # The student's endpoint is a secret: no file of the Space names it.
    port = llama_server.base_url.rsplit(":", 1)[1]
    assert not [p for p in folder.rglob("*") if p.is_file() and f"127.0.0.1:{port}".encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def venv(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    (Path(site.stdout.strip()) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    gradio = f"gradio=={front_matter(folder)['sdk_version']}"  # the Spaces builder adds it from sdk_version
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check", "-r", str(folder / "requirements.txt"), gradio]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    (OUTPUT / "deploy-install.log").write_text(installed.stdout + installed.stderr)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def test_requirements_resolve_from_the_index_without_ted(folder: Path, venv: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    # llama-cpp-python's wheel index (an --extra-index-url line, with --only-binary) is not reachable
    # from this sandbox: the rest is resolved from PyPI here; tests/unit/test_space.py checks those lines.
    offline = tmp_path / "requirements.txt"
    offline.write_text("".join(line for line in (folder / "requirements.txt").read_text().splitlines(True) if not line.startswith("--")))
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv), "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-r", str(offline), f"gradio=={front_matter(folder)['sdk_version']}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"gradio", "datasets", "openai", "huggingface-hub"} <= {n.replace("_", "-") for n in names}
    assert not {n for n in names if n.startswith("ted")}
    # Outside the Space folder the venv has no ted at all: the app can only use the folder's.
    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([venv, "-c", "import ted"], capture_output=True, cwd=tmp_path, env=bare).returncode != 0
    found = subprocess.run([venv, "-c", "import ted; print(ted.__file__)"], capture_output=True, text=True, cwd=folder, env=bare)
    assert Path(found.stdout.strip()) == folder / "ted" / "__init__.py", found.stderr


@pytest.fixture(scope="module")
def space_url(folder: Path, venv: Path, env: dict[str, str], llama_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("app") / "app.log"
    # What the Space's settings hold: the secret, and the environment a Space gives the app.
    app_env = {**env, "TED_STUDENT": llama_server.spec, "OPENAI_API_KEY": KEY, "TED_SPACE_MAX_NEW_TOKENS": "64",
               "GRADIO_SERVER_NAME": "127.0.0.1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    app_env.pop("PYTHONPATH", None)
    with open(log, "wb") as sink:
        process = subprocess.Popen([str(venv), str(folder / "app.py")], cwd=folder, env=app_env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if match := RUNNING.search(log.read_text(errors="replace")):
                break
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        else:
            pytest.fail(f"the deployed app did not come up:\n{log.read_text()[-3000:]}")
        yield match.group(1).rstrip("/")
    finally:
        stop(process)


def test_chromium_chats_with_the_deployed_space(space_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(space_url, wait_until="load")
            question = tab.locator("#ask textarea")
            question.wait_for(timeout=60_000)
            tab.get_by_text("Experience block injected into the system prompt").click()
            block = tab.locator("#block")
            for choice, expected in (("none: the plain student", "No library"), (f"{LIBRARY} (Hub)", "[E2] Check an arithmetic result")):
                tab.get_by_role("combobox", name="Experience library").click()
                tab.get_by_role("option", name=choice).click()
                expect(block).to_contain_text(expected)
                question.fill("What is 17 + 25?")
                question.press("Enter")
                expect(tab.locator('#chat-lib [data-testid="user"]')).to_contain_text("What is 17 + 25?")
                bot = tab.locator('#chat-lib [data-testid="bot"]').last
                if choice.startswith("none"):
                    expect(bot).not_to_have_text("…", timeout=REPLY_TIMEOUT_MS)
                else:  # the reply is done when the cited experiences are reported
                    expect(block).to_contain_text("The last reply cited", timeout=REPLY_TIMEOUT_MS)
                expect(tab.locator("#ask button.submit-button")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
                reply = bot.inner_text()
                assert reply.strip() and reply.strip() != "…" and not reply.startswith("⚠️"), reply
            tab.screenshot(path=str(OUTPUT / "space-deployed.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()


def test_the_readme_gradio_client_example_runs(folder: Path, space_url: str, env: dict[str, str]) -> None:
    readme = (folder / "README.md").read_text()
    (example,) = [code for code in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "gradio_client" in code]
    done = subprocess.run([sys.executable, "-c", example.replace('"ORG/NAME"', repr(space_url))], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()


def test_deploy_uploads_exactly_the_dry_run_in_one_commit(hub: HubServer, folder: Path, env: dict[str, str], llama_server: Any) -> None:
    done = deploy({**env, "OPENAI_API_KEY": KEY}, llama_server, "--secret", "OPENAI_API_KEY", "--hardware", "cpu-basic")
    assert done.returncode == 0, done.stderr
    assert f"deployed {SPACE}" in done.stdout and "secrets set: OPENAI_API_KEY, TED_STUDENT" in done.stdout
    commits = hub.git("space", SPACE, "rev-list", "main").split()
    assert len(commits) == 2  # the repo's initial commit, then the deploy
    in_repo = set(hub.git("space", SPACE, "ls-tree", "-r", "--name-only", "main").split())
    dry = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert in_repo == dry | {".gitattributes"}
    for path in ("app.py", "requirements.txt", "space_settings.json", "ted/hub.py"):
        assert hub.git("space", SPACE, "show", f"main:{path}").encode() == (folder / path).read_bytes(), path
    assert "Secrets set by the deploy: `OPENAI_API_KEY`, `TED_STUDENT`." in hub.git("space", SPACE, "show", "main:README.md")
    assert hub.space_secrets[SPACE] == {"TED_STUDENT": llama_server.spec, "OPENAI_API_KEY": KEY}
    assert json.loads((hub.root / f"spaces/{SPACE}.git/hub.json").read_text())["sdk"] == "gradio"
    # A redeploy is one more commit, and nothing of the old one is left over.
    again = deploy(env, llama_server)
    assert again.returncode == 0, again.stderr
    assert len(hub.git("space", SPACE, "rev-list", "main").split()) == 3


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--hardware", "quantum-1"], "unknown hardware 'quantum-1'"),
        (["--dry-run"], "--dry-run and --out go together"),
        (["--secret", "TED_NOT_SET_ANYWHERE"], "$TED_NOT_SET_ANYWHERE is not set here"),
        (["--library", "alice/no-such-lib"], "no such dataset"),
    ],
)
def test_bad_deploy_options_fail_in_one_line(env: dict[str, str], llama_server: Any, hub: HubServer, args: list[str], phrase: str) -> None:
    commits = hub.git("space", SPACE, "rev-list", "--all").split() if (hub.root / f"spaces/{SPACE}.git").exists() else []
    done = deploy(env, llama_server, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], done.stderr
    after = hub.git("space", SPACE, "rev-list", "--all").split() if (hub.root / f"spaces/{SPACE}.git").exists() else []
    assert after == commits
