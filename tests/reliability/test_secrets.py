"""Secrets: a planted API key and a planted HF token never appear in anything ted writes or prints.

One full life of a library, as a user lives it: distill against an endpoint that fails a fifth of
its calls and quotes the Authorization header in every error body (a careless proxy), a run that
dies of an outage and is resumed, `ted show` in every form, the card, a push to the Hub and a pull
back. Every byte of stdout and stderr and every file under the workspace (output folder,
checkpoint, card, pulled copy, Hub cache) and in the Hub's repository is searched for the secrets.
The Space's side is checked in test_space_hostile.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.hub_server import HubServer, Token
from tests.reliability.common import clean_env, ted_command
from tests.reliability.simulated import RecordingSimulator, distill_args
from tests.sim import write_problems

pytestmark = pytest.mark.integration

API_KEY = "sk-planted-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
HF_TOKEN = "hf_plantedTokenZyXwVuTsRqPoNmLkJiHg"
SECRETS = (API_KEY, HF_TOKEN, API_KEY[3:], HF_TOKEN[3:])  # also without the prefix, in case one is stripped
OPTIONS = ("--epochs", "2", "--rollouts", "2", "--batch-size", "4", "--budget-tokens", "250", "--max-items", "4",
           "--max-tokens", "64", "--json-max-tokens", "512", "--request-timeout", "1", "--max-retries", "3")  # fmt: skip


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
        died = run(*distill_args(sim, data, out, *OPTIONS))
        assert died.returncode != 0 and b"HTTP 500" in died.stderr, died.stderr[-2000:]
        assert b"***" in died.stderr  # the key was in the server's message, and was blanked out
        # The same run against the flaky endpoint, to the end.
        sim.weights, sim.failure_rate = {kind: 1.0 for kind in ("429", "500", "503", "reset", "timeout", "bad_json_body")}, 0.2
        finished = run(*distill_args(sim, data, out, *OPTIONS, "--force"))
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert sim.stats().faults, "the endpoint never failed: the error paths were not exercised"

        for form in ((), ("--json",), ("--prompt",)):
            assert run("show", str(out), *form).returncode == 0
        assert run("card", str(out), "--out", str(work / "card")).returncode == 0
        pushed = run("push", str(out), "alice/planted")
        assert pushed.returncode == 0, pushed.stderr[-2000:]
        assert run("pull", "alice/planted@v1", "--out", str(work / "pulled")).returncode == 0
        assert run("versions", "alice/planted").returncode == 0
        # What the Hub now holds, byte for byte, as any visitor would download it.
        for name in ("library.json", "README.md", "experiences.jsonl"):
            outputs.append((f"hub {name}", hub.git("dataset", "alice/planted", "show", f"v1:{name}").encode()))

    files = [p for p in work.rglob("*") if p.is_file() and p.name != "problems.jsonl"]
    assert any(p.name == "library.json" for p in files) and any(p.name == "README.md" for p in files)
    outputs += [(str(p.relative_to(work)), p.read_bytes()) for p in files]
    found = {where: leaks(blob) for where, blob in outputs if leaks(blob)}
    print(f"\nsecrets: {len(outputs)} outputs searched ({sum(len(b) for _, b in outputs):,} bytes), {len(found)} with a secret")
    assert found == {}
