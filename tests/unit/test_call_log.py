"""The call log: every stage's calls on record, rejected proposals with their reasons, no secrets,
images as hashes, capped fields, and a resumed run that records each call once (docs/call-log.md)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from ted.distill.config import RunConfig
from ted.distill.pipeline import Distiller
from ted.errors import ModelError
from ted.library import Rejection
from ted.models import load_model
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, Usage
from ted.models.calllog import FIELD_CHARS, CallLog, Recorded, calls_path, context
from ted.tasks import get_task
from ted.tasks.base import Problem
from tests.reliability.simulated import RecordingSimulator
from tests.scripted import ScriptedModel, SumTask, sum_problems
from tests.sim import write_problems
from tests.support import run_ted

ENGINE_STAGES = {"rollouts", "solve", "structure", "extract", "compress", "validate"}


def config(out: Path, **overrides: object) -> RunConfig:
    base = dict(data="mem", student="scripted:s", teacher="scripted:t", out=str(out / "library.json"),
                epochs=2, rollouts=2, batch_size=3, max_items=2, budget_tokens=400, seed=3, compression="teacher")  # fmt: skip
    return RunConfig(**(base | overrides))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in calls_path(out / "library.json").read_text(encoding="utf-8").splitlines()]


class Sloppy(ScriptedModel):
    """A teacher whose extraction copies a placeholder and updates an id the library does not hold, beside one good lesson."""

    def reply(self, stage, messages, params, i):  # type: ignore[no-untyped-def]
        if stage == "extract":
            good = json.loads(super().reply(stage, messages, params, i))["operations"]
            return json.dumps({"diagnosis": "the wrong attempts skipped the check", "operations": [
                {"op": "add", "text": "<a new general lesson>"},
                {"op": "update", "id": "E99", "text": "Recheck every step of the computation before answering."},
                *good,
            ]})  # fmt: skip
        return super().reply(stage, messages, params, i)


def test_every_stage_and_every_proposal_is_on_record(tmp_path: Path) -> None:
    problems = sum_problems(6)
    lib = asyncio.run(Distiller(config(tmp_path), ScriptedModel("s"), Sloppy("t"), SumTask(), problems[:4], problems[4:]).run())
    log = records(tmp_path)
    calls = [r for r in log if r["kind"] == "call"]
    assert {r["stage"] for r in calls} == ENGINE_STAGES
    assert {r["role"] for r in calls if r["stage"] in ("rollouts", "validate")} == {"student"}
    assert {r["role"] for r in calls if r["stage"] not in ("rollouts", "validate")} == {"teacher"}
    # One record per call, with what it was for and what came back.
    assert len([r for r in calls if r["stage"] == "rollouts"]) == 2 * 4 and len([r for r in calls if r["stage"] == "extract"]) == 2 * 4
    for record in calls:
        assert record["messages"] and record["messages"][-1]["text"] and record["replies"][0]["content"]
        assert record["usage"]["prompt_tokens"] > 0 and record["seconds"] >= 0 and record["error"] is None
    rollout = next(r for r in calls if r["stage"] == "rollouts")
    assert rollout["problem"] in {p.id for p in problems} and rollout["epoch"] in (1, 2) and rollout["step"] >= 1 and rollout["batch"] in (1, 2)
    assert all(r["batch"] == (r["step"] - 4 * (r["epoch"] - 1) - 1) // 3 + 1 for r in log if r["kind"] != "call" or r["stage"] in ("rollouts", "extract"))
    assert len(rollout["replies"]) == 2 and rollout["params"]["n"] == 2
    # Every proposal, with its fate: the tally's counts, and the reasons with the proposed text.
    proposals = [r for r in log if r["kind"] == "proposal"]
    refused = Counter(r["rejection"] for r in proposals if r["rejection"])
    tally = lib.metrics.extraction
    assert refused == Counter({reason.value: n for reason, n in tally.rejected.items()})
    # The first batch's 3 problems see an empty library: "update E99" can replace nothing there, so it is
    # judged as an add (and refused for its form); the other 5 extractions see lessons, and E99 is unknown.
    assert refused[Rejection.PLACEHOLDER.value] == 8 and refused[Rejection.UNKNOWN_ID.value] == 5 and refused[Rejection.FORM.value] == 3
    assert sum(1 for r in proposals if r["applied_as"]) == tally.accepted
    unknown = next(r for r in proposals if r["rejection"] == Rejection.UNKNOWN_ID.value)
    assert unknown["id"] == "E99" and unknown["text"].startswith("Recheck every step") and "E99" in unknown["detail"]
    extractions = [r for r in log if r["kind"] == "extraction"]
    assert len(extractions) == 8 and all(r["proposed"] >= 3 and r["diagnosis"].startswith("the wrong") for r in extractions)
    assert sum(r["proposed"] for r in extractions) == len(proposals) and all(r["parsed"] and r["structured"] for r in extractions)


def test_a_resumed_run_records_each_call_once(tmp_path: Path) -> None:
    class Crashing(ScriptedModel):
        def __init__(self, name: str, crash_at: int) -> None:
            super().__init__(name)
            self.crash_at, self.count = crash_at, 0

        async def _chat(self, messages, params):  # type: ignore[no-untyped-def]
            self.count += 1
            if self.count == self.crash_at:
                raise ModelError("the endpoint went away")
            return await super()._chat(messages, params)

    def key(record: dict) -> tuple:
        return record["kind"], record.get("stage"), record.get("problem"), record.get("epoch"), record.get("step"), record.get("text")

    problems = sum_problems(8)
    asyncio.run(Distiller(config(tmp_path / "ref"), ScriptedModel("s"), ScriptedModel("t"), SumTask(), problems).run())
    cfg = config(tmp_path / "run")
    with pytest.raises(ModelError):
        asyncio.run(Distiller(cfg, ScriptedModel("s"), Crashing("t", 24), SumTask(), problems).run())
    crashed = records(tmp_path / "run")
    assert any(r.get("error") == "ModelError: the endpoint went away" for r in crashed)  # the failed call is on record
    asyncio.run(Distiller(cfg, ScriptedModel("s"), ScriptedModel("t"), SumTask(), problems).run(resume=True))
    reference, resumed = Counter(map(key, records(tmp_path / "ref"))), Counter(map(key, records(tmp_path / "run")))
    assert resumed == reference  # the calls after the checkpoint were cut and made again: none twice, none missing


def test_planted_secrets_never_reach_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API key in the environment and one in the URL's query, quoted back by a careless server in
    its errors: the log of a run, and of a call that fails for good, holds neither."""
    env_key, url_key = "sk-planted-env-0a1b2c3d4e5f6071", "planted-query-9f8e7d6c5b4a"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    out, failed = tmp_path / "library.json", tmp_path / "failed.calls.jsonl"
    with RecordingSimulator(0.0, leak_auth=True, tokens_per_reply=20) as sim:
        spec = f"openai:sim@{sim.base_url}?api-key={url_key}"
        rows = map(json.loads, write_problems(tmp_path / "p.jsonl", 3).read_text().splitlines())
        data = [Problem(id=row["id"], question=row["question"], answer=row["answer"]) for row in rows]
        model = load_model(spec, max_retries=0)

        async def distill_then_fail() -> None:
            try:
                await Distiller(config(tmp_path, student=spec, teacher=spec, epochs=1), model, model, get_task("generic"), data).run()
                sim.weights, sim.failure_rate = {"500": 1.0}, 1.0
                with CallLog(failed).open() as log, context(stage="probe"):
                    await Recorded(model, log, "student").chat([Message("user", "Say OK.")])
            finally:
                await model.aclose()

        with pytest.raises(ModelError, match="HTTP 500"):
            asyncio.run(distill_then_fail())
    assert any(url_key in c or env_key in c for c in sim.credentials)  # the live requests did carry them
    run_log, failed_log = calls_path(out).read_bytes(), failed.read_bytes()
    assert b"HTTP 500" in failed_log and b"***" in failed_log  # the server's error is on record, its quote of the key masked
    for blob in (run_log, failed_log):
        assert env_key.encode() not in blob and url_key.encode() not in blob
    stages = {r["stage"] for r in map(json.loads, run_log.decode().splitlines()) if r["kind"] == "call"}
    assert stages >= {"probe", "rollouts", "solve", "structure", "extract"}  # the system-message probe before the first paid call


class Echo(BaseChatModel):
    """Replies with a fixed text (long, or holding markup and control characters)."""

    def __init__(self, reply: str) -> None:
        super().__init__("echo:test", "echo")
        self.reply = reply

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        return ChatResult(texts=[self.reply] * params.n, usage=Usage(10, 5, 4), finish_reasons=["stop"] * params.n)


def test_images_are_hashes_and_long_fields_are_capped(tmp_path: Path) -> None:
    from PIL import Image

    image = Image.new("RGB", (64, 32), (200, 10, 10))
    png = io.BytesIO()
    image.save(png, format="PNG")
    log = CallLog(tmp_path / "x.calls.jsonl").open()
    model = Recorded(Echo("y" * (3 * FIELD_CHARS)), log, "teacher")
    asyncio.run(model.chat([Message("user", "What colour?", images=[png.getvalue(), image])]))
    log.close()
    record = json.loads((tmp_path / "x.calls.jsonl").read_text())
    digest = "sha256:" + hashlib.sha256(_png(image)).hexdigest()
    assert record["messages"][0]["images"] == [digest, digest]  # bytes and a PIL image: the same PNG the model is sent
    assert "base64" not in (tmp_path / "x.calls.jsonl").read_text()
    reply = record["replies"][0]["content"]
    assert FIELD_CHARS < len(reply) < FIELD_CHARS + 100 and f"{2 * FIELD_CHARS} characters cut" in reply
    assert record["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "cached_prompt_tokens": 4}


def _png(image: object) -> bytes:
    from ted.models.base import image_to_png_bytes

    return image_to_png_bytes(image)


def test_ted_log_shows_why_and_shows_it_literally(tmp_path: Path) -> None:
    """`ted log OUT --rejected`: each refused proposal with its reason and text; and every text as
    written: Rich markup stays text, escape sequences (an OSC 52 clipboard write) are made visible."""

    class Hostile(ScriptedModel):
        def reply(self, stage, messages, params, i):  # type: ignore[no-untyped-def]
            if stage == "extract":
                return json.dumps({"diagnosis": "[bold]none[/bold]", "operations": [{"op": "update", "id": "E7", "text": "Always [red]hide[/red] this and answer with the sum here."}]})
            return super().reply(stage, messages, params, i)

    asyncio.run(Distiller(config(tmp_path, epochs=1), ScriptedModel("s"), Hostile("t"), SumTask(), sum_problems(3)).run())
    shown = run_ted("log", str(tmp_path), "--rejected")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    # (on the empty library "update E7" can replace nothing: it is judged as an add, and refused for its form)
    # (where a lesson was due, the teacher was shown the refusal and asked once more: the same text again)
    assert sum("(asked again once, shown why all were refused)" in line for line in lines) == 1
    assert sum("rejected add (not of the form When <trigger>, <action>): \"Always [red]hide[/red] this and answer with the sum here.\"" in line for line in lines) == 4
    assert "[bold]none[/bold]" in shown.stdout
    assert lines[-1].startswith("3 extractions: 0 proposals accepted, 4 rejected (not of the form When <trigger>, <action> 4)")
    listing = run_ted("log", str(tmp_path / "library.json"), "--stage", "extract", "--json")
    assert Counter(json.loads(line)["kind"] for line in listing.stdout.splitlines()) == {"call": 4, "proposal": 4, "extraction": 3}

    log = CallLog(tmp_path / "raw.calls.jsonl").open()
    asyncio.run(Recorded(Echo("ok \x1b]52;c;ZXZpbA==\x07 [link=http://x]click[/link] \u202eevil"), log, "student").chat([Message("user", "hi")]))
    log.close()
    with (tmp_path / "raw.calls.jsonl").open("a") as damaged:  # a hand-edited line, and one a kill cut short
        damaged.write('{"kind": "call", "stage": "rollouts", "usage": [1, 2]}\n{"kind": "call", "stage": "rollo')
    for args in ((), ("--full",)):
        raw = run_ted("log", str(tmp_path / "raw.calls.jsonl"), *args)
        assert raw.returncode == 0 and "\x1b" not in raw.stdout and "\u202e" not in raw.stdout, raw.stdout
        assert "\\x1b]52;c;ZXZpbA==\\x07 [link=http://x]click[/link] \\u202eevil" in raw.stdout
        assert raw.stdout.splitlines()[-1].startswith("2 lines of ") and "1 calls" in raw.stdout
    assert run_ted("log", str(tmp_path / "nowhere")).returncode == 1  # a missing file: a runtime failure (ted.errors)


def test_outputs_that_differ_in_their_suffix_never_share_a_log(tmp_path: Path) -> None:
    """`--out a.json` and `--out a.jsonl` once both wrote `a.calls.jsonl`: the log is named after the
    whole file name, and `ted log` finds each run's own (an output that is itself JSON Lines included)."""
    outs = [tmp_path / name for name in ("a.json", "a.jsonl", "a", "a.calls")]
    logs = [calls_path(out) for out in outs]
    assert len(set(logs)) == len(outs) and all(log.parent == tmp_path for log in logs)
    assert [log.name for log in logs[:2]] == ["a.json.calls.jsonl", "a.jsonl.calls.jsonl"]
    for out, log in zip(outs, logs):
        out.write_text("{}\n")
        with CallLog(log).open() as calls:
            asyncio.run(Recorded(Echo(out.name), calls, "student").chat([Message("user", "hi")]))
    for out in outs[:2]:
        shown = run_ted("log", str(out), "--json")
        assert shown.returncode == 0, shown.stderr
        assert [json.loads(line)["replies"][0]["content"] for line in shown.stdout.splitlines()] == [out.name]


def test_eval_requests_are_on_record_with_images_as_hashes(tmp_path: Path) -> None:
    """`ted eval` / `ted reproduce`: lm-eval makes the requests; each logged sample becomes an `eval`
    record — the chat it sent (a JSON chat string, or a plain prompt with its visuals), every reply, the score."""
    import base64

    from PIL import Image

    from ted.evaluate import log_samples

    image = Image.new("RGB", (8, 8), (0, 90, 0))
    png = _png(image)
    chat = json.dumps([{"role": "system", "content": "lessons"},
                       {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
                                                    {"type": "text", "text": "Question: what colour?"}]}])  # fmt: skip
    samples = [
        {"doc_id": 0, "doc": {"id": "q1"}, "arguments": [(chat, {"max_gen_toks": 64})], "resps": [["green", "blue"]], "acc": 0.5},
        {"doc_id": 1, "doc": {"id": "q2"}, "arguments": [("Question: 2+2?", {}, {"visual": [image]})], "resps": [["4"]], "acc": float("nan")},
    ]
    with CallLog(tmp_path / "e.calls.jsonl").open() as log:
        log_samples(log, samples, "with_library", repeat=1)
    first, second = (json.loads(line) for line in (tmp_path / "e.calls.jsonl").read_text().splitlines())
    digest = "sha256:" + hashlib.sha256(png).hexdigest()
    assert first["stage"] == "eval" and first["arm"] == "with_library" and first["problem"] == "q1" and first["score"] == 0.5
    assert first["messages"] == [{"role": "system", "text": "lessons"}, {"role": "user", "text": "Question: what colour?", "images": [digest]}]
    assert [r["content"] for r in first["replies"]] == ["green", "blue"] and first["params"] == {"max_gen_toks": 64}
    assert second["messages"] == [{"role": "user", "text": "Question: 2+2?", "images": [digest]}] and second["usage"] is None
    assert second["score"] is None  # a NaN is written as null: every line stays strict JSON
    assert "base64" not in (tmp_path / "e.calls.jsonl").read_text()
