"""Secrets: a planted API key and a planted HF token never appear in anything ted writes or prints.

One full life of a library, as a user lives it: distill against an endpoint that fails a fifth of
its calls and quotes the Authorization header in every error body (a careless proxy), a run that
dies of an outage and is resumed, `ted show` in every form, the card, a push to the Hub and a pull
back, `ted chat` against the leaky endpoint, and a pull the Hub refuses (its error line). Every byte of stdout and stderr and every file under the workspace (output folder,
checkpoint, card, pulled copy, Hub cache) and in the Hub's repository is searched for the secrets.
The Space's side is checked in test_space_hostile.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import requests
from gradio_client import Client

from tests.integration.hub_server import HubServer, Token
from tests.reliability.common import clean_env, ted_command
from tests.reliability.simulated import RecordingSimulator, distill_args
from tests.sim import write_problems
from tests.space_app import running_space

pytestmark = [pytest.mark.integration, pytest.mark.first]  # minutes of dependent work: handed out first (tests/conftest.py)

API_KEY = "sk-planted-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
HF_TOKEN = "hf_plantedTokenZyXwVuTsRqPoNmLkJiHg"
SECRETS = (API_KEY, HF_TOKEN, API_KEY[3:], HF_TOKEN[3:])  # also without the prefix, in case one is stripped
OPTIONS = ("--epochs", "2", "--rollouts", "2", "--batch-size", "4", "--budget-tokens", "250", "--max-items", "4",
           "--max-tokens", "64", "--json-max-tokens", "512", "--request-timeout", "1")  # fmt: skip
FINISHES = ("--max-retries", "6")  # 0.2^7: no request of the run fails every try, whatever the prompts hash to
# A run meant to die (an outage, an unreachable server) still retries, once: six retries would add the
# client's backoff, about 20 s of sleep per run, and end in the same error line.
DIES = ("--max-retries", "1")


def leaks(blob: bytes) -> list[str]:
    return [secret for secret in SECRETS if secret.encode() in blob]


def test_no_output_of_a_full_run_contains_the_key_or_the_token(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    data = write_problems(work / "problems.jsonl", 8)
    out = work / "lib" / "library.json"
    outputs: list[tuple[str, bytes]] = []

    with HubServer(tmp_path / "hub", {HF_TOKEN: Token("alice", "write")}) as hub, RecordingSimulator(
        0.005, failure_rate=0.2, seed=5, retry_after=0.05, hang_s=3.0, tokens_per_reply=40, leak_auth=True
    ) as sim:
        env = clean_env(
            {"OPENAI_API_KEY": API_KEY, "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf-home"),
             "HF_HUB_CACHE": str(work / "hf-cache")}  # fmt: skip
        )

        def run(*args: str) -> subprocess.CompletedProcess[bytes]:
            proc = subprocess.run(ted_command(*args), cwd=work, env=env, capture_output=True, timeout=300)
            outputs.append((f"ted {' '.join(args[:2])} stdout", proc.stdout))
            outputs.append((f"ted {' '.join(args[:2])} stderr", proc.stderr))
            return proc

        # A run that dies of an outage; its error quotes the leaky server's message.
        sim.weights, sim.failure_rate = {"500": 1.0}, 1.0
        died = run(*distill_args(sim, data, out, *OPTIONS, *DIES))
        assert died.returncode != 0 and b"HTTP 500" in died.stderr, died.stderr[-2000:]
        assert b"***" in died.stderr  # the key was in the server's message, and was blanked out
        # The same run against the flaky endpoint, to the end.
        sim.weights, sim.failure_rate = {kind: 1.0 for kind in ("429", "500", "503", "reset", "timeout", "bad_json_body")}, 0.2
        finished = run(*distill_args(sim, data, out, *OPTIONS, *FINISHES, "--force"))
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert sim.stats().faults, "the endpoint never failed: the error paths were not exercised"

        for form in ((), ("--json",), ("--prompt",)):
            assert run("show", str(out), *form).returncode == 0
        assert run("card", str(out), "--out", str(work / "card")).returncode == 0
        pushed = run("push", str(out), "alice/planted")
        assert pushed.returncode == 0, pushed.stderr[-2000:]
        assert run("pull", "alice/planted@v1", "--out", str(work / "pulled")).returncode == 0
        assert run("versions", "alice/planted").returncode == 0
        # `ted chat` against the same leaky endpoint (its stream, or the error it ends in), and a Hub error line.
        chat = subprocess.run(ted_command("chat", "--student", sim.spec("sim-student"), "--library", str(out)), cwd=work, env=env,
                              input=b"hello\n", capture_output=True, timeout=120)  # fmt: skip
        outputs += [("ted chat stdout", chat.stdout), ("ted chat stderr", chat.stderr)]
        missing = run("pull", "alice/planted@v9")  # the Hub's refusal, as an error line
        assert missing.returncode != 0 and missing.stderr.startswith(b"error: "), missing.stderr[-2000:]
        # What the Hub now holds, byte for byte, as any visitor would download it.
        for name in ("library.json", "README.md", "experiences.jsonl"):
            outputs.append((f"hub {name}", hub.git("dataset", "alice/planted", "show", f"v1:{name}").encode()))

    files = [p for p in work.rglob("*") if p.is_file() and p.name != "problems.jsonl"]
    assert any(p.name == "library.json" for p in files) and any(p.name == "README.md" for p in files)
    outputs += [(str(p.relative_to(work)), p.read_bytes()) for p in files]
    found = {where: leaks(blob) for where, blob in outputs if leaks(blob)}
    print(f"\nsecrets: {len(outputs)} outputs searched ({sum(len(b) for _, b in outputs):,} bytes), {len(found)} with a secret")
    assert found == {}


PASSWORD = "PlantedPassw0rd-9f8e7d"
QUERY_TOKEN = "qtok-planted-5e6f7a8b9c"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
URL_SECRETS = (PASSWORD, QUERY_TOKEN, BASIC)


def test_credentials_in_endpoint_urls_reach_the_server_and_nothing_else(tmp_path: Path) -> None:
    """`openai:m@http://alice:PASSWORD@host/v1?api-key=TOKEN`: a proxied server's usual address.

    The live requests carry both (Basic auth from the userinfo, the query parameter on every path);
    the stored config, checkpoint, card, Hub upload, every error line (the server's own messages quote
    the Authorization header), `ted chat`'s banner and the Space's page carry neither.
    """
    work = tmp_path / "work"
    work.mkdir()
    data = write_problems(work / "problems.jsonl", 6)
    out = work / "lib" / "library.json"
    outputs: list[tuple[str, bytes]] = []

    def endpoint(port: int, model: str) -> str:
        return f"openai:{model}@http://alice:{PASSWORD}@127.0.0.1:{port}/v1?api-key={QUERY_TOKEN}"

    with HubServer(tmp_path / "hub", {HF_TOKEN: Token("alice", "write")}) as hub, RecordingSimulator(
        0.005, failure_rate=0.2, seed=3, retry_after=0.05, tokens_per_reply=40, leak_auth=True
    ) as sim:
        env = clean_env({"HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf-home"), "HF_HUB_CACHE": str(work / "hf-cache")})

        def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
            proc = subprocess.run(ted_command(*args), cwd=work, env=env, input=stdin, capture_output=True, timeout=300)
            outputs.extend([(f"ted {args[0]} stdout", proc.stdout), (f"ted {args[0]} stderr", proc.stderr)])
            return proc

        spec = ["--student", endpoint(sim.port, "sim-student"), "--teacher", endpoint(sim.port, "sim-teacher")]
        distill = ["distill", "--data", str(data), *spec, "--out", str(out), *OPTIONS]
        sim.weights, sim.failure_rate = {"500": 1.0}, 1.0
        died = run(*distill, *DIES)
        assert died.returncode != 0 and b"http://***@127.0.0.1" in died.stderr and b"Basic ***" in died.stderr, died.stderr[-2000:]
        sim.weights, sim.failure_rate = {kind: 1.0 for kind in ("429", "500", "503", "reset", "bad_json_body")}, 0.2
        finished = run(*distill, *FINISHES, "--force")
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert f"Basic {BASIC}" in sim.credentials and f"api-key={QUERY_TOKEN}" in sim.credentials  # the live request kept them
        unreachable = run("chat", "--student", endpoint(9, "m"), "--library", str(out), stdin=b"hello\n")
        assert unreachable.returncode != 0 and b"cannot reach http://***@127.0.0.1:9/v1?api-key=***" in unreachable.stderr, unreachable.stderr
        assert run("distill", "--data", str(data), "--student", endpoint(9, "m"), "--teacher", endpoint(9, "m"), "--out", str(work / "dead"), *OPTIONS, *DIES).returncode != 0
        for form in ((), ("--json",), ("--prompt",)):
            assert run("show", str(out), *form).returncode == 0
        assert run("card", str(out), "--out", str(work / "card")).returncode == 0
        assert run("push", str(out), "alice/urls").returncode == 0
        assert run("pull", "alice/urls@v1", "--out", str(work / "pulled")).returncode == 0
        for name in ("library.json", "README.md", "experiences.jsonl"):
            outputs.append((f"hub {name}", hub.git("dataset", "alice/urls", "show", f"v1:{name}").encode()))

        # The Space, with the credentialed endpoint as its student: the simulator cannot stream, so its
        # error (quoting the Authorization header) is what the page shows.
        sim.failure_rate = 0.0
        with running_space({**env, "TED_STUDENT": endpoint(sim.port, "sim-student")}, work / "space.log") as url:
            client = Client(url, verbose=False, download_files=False)
            answered = client.predict({"text": "Compute 12 + 30.", "files": []}, [], [], "none", None, False, 0.0, 16, api_name="/chat_ui")
            page = requests.get(url, timeout=30).content
        notice = "".join(part.get("text", "") for part in answered[1][-1]["content"])
        assert notice.startswith("⚠️"), notice
        outputs += [("space reply", json.dumps(answered, ensure_ascii=False).encode()), ("space page", page)]

    library = json.loads(out.read_text())
    assert library["config"]["student"] == "openai:sim-student@http://***@127.0.0.1:%d/v1?api-key=***" % sim.port
    files = [p for p in work.rglob("*") if p.is_file() and p.name != "problems.jsonl"]
    outputs += [(str(p.relative_to(work)), p.read_bytes()) for p in files]
    found = {where: [s for s in URL_SECRETS if s.encode() in blob] for where, blob in outputs}
    found = {where: hit for where, hit in found.items() if hit}
    print(f"\nURL credentials: {len(outputs)} outputs searched ({sum(len(b) for _, b in outputs):,} bytes), {len(found)} with a secret")
    assert found == {}
