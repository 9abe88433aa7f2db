"""Priming (`ted.distill.prime`): each batch's shared prompt heads go out once, ahead of the requests
that share them, only to models that say it pays; the run's result does not change."""

import asyncio
import time
from dataclasses import dataclass, field

from ted.distill import prime
from ted.distill.extract import extract_prompt
from ted.distill.rollouts import Rollout, student_messages
from ted.distill.structure import Structured, structure_prompt
from ted.library import Experience, Library
from ted.models.base import ChatResult, Message, SamplingParams, Usage
from ted.tasks.base import Problem
from ted.tokens import get_counter
from tests.scripted import ScriptedModel, SumTask, sum_problems
from tests.unit.test_pipeline import config, essence, run

COUNTER = get_counter()


def test_the_head_is_what_both_messages_share_cut_before_the_line_where_they_part():
    system = Message("system", "rules\nlessons")
    a = [system, Message("user", "intro\nshared line\nquestion A")]
    b = [system, Message("user", "intro\nshared line\nquestion B")]
    assert prime.shared_head(a, b) == [system, Message("user", "intro\nshared line")]
    # the part that differs within a line is left out with that whole line
    assert prime.shared_head([Message("user", "one\ntwo A")], [Message("user", "one\ntwo B")]) == [Message("user", "one")]
    assert prime.shared_head([Message("user", "A")], [Message("user", "B")]) is None
    # a message with images shares none of its text: the head ends where that turn begins
    pictured = Message("user", "same\ntext", images=["x.png"])
    assert prime.shared_head([system, pictured], [system, pictured]) == [system, Message("user", "")]


def problem(mark: str) -> Problem:
    return Problem(id=mark, question=f"Compute {mark}.", answer="1")


def test_the_structuring_head_is_its_instructions_and_begins_every_structuring_prompt():
    (head,) = prime.structure_head()
    prompts = [structure_prompt(problem(m).question, [{"label": "student attempt 1", "text": f"trace {m}", "truncated": False}]) for m in "12"]
    assert all(p.startswith(head.text) for p in prompts)
    assert head.text == prompts[0][: prompts[0].index("\n## Problem\n") + len("\n## Problem")]  # everything before the problem


def test_the_extraction_head_holds_the_instructions_and_the_batchs_library():
    library = Library(items=[Experience(id="E1", text="When a sum has many terms, add them in pairs and re-check the total.")])
    (head,) = prime.extract_head(library, COUNTER, 2)
    run = Rollout(text="t", answer="2", correct=False, cited=["E1"])
    prompts = [extract_prompt(library, problem(m), [run], run, Structured([f"chain {m}"], "teacher chain", True), COUNTER, 2) for m in "12"]
    assert all(p.startswith(head.text) for p in prompts)
    assert "[E1]" in head.text and head.text == prompts[0][: prompts[0].index("\n## Problem\n") + len("\n## Problem")]


def test_the_rollouts_head_is_the_system_prompt_with_the_library():
    library = Library(items=[Experience(id="E1", text="When a sum has many terms, add them in pairs and re-check the total.")])
    head = prime.student_head(library, SumTask())
    real = student_messages(library, problem("1"), SumTask())
    assert head == [real[0], Message("user", "")] and "[E1]" in real[0].text


@dataclass
class PrimedModel(ScriptedModel):
    """A scripted model that says priming pays: primes (1-token requests) take a while. `primes` holds
    each prime's (head text, start, end), `sent` each other request's (stage, text, time sent)."""

    seconds: float = 0.05  # per prime: long enough that a stage not waiting for its prime would overtake it
    primes: list[tuple[str, float, float]] = field(default_factory=list)
    sent: list[tuple[str, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.primes_prefixes = True

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        text = "".join(m.text for m in messages)
        if params.max_tokens == prime.PRIME_PARAMS.max_tokens:
            started = time.monotonic()
            await asyncio.sleep(self.seconds)
            self.primes.append((text, started, time.monotonic()))
            return ChatResult(texts=["x"], usage=Usage(prompt_tokens=len(text) // 4, completion_tokens=1), requests=1)
        self.sent.append((self.stage(messages), text, time.monotonic()))
        return await super()._chat(messages, params)


def test_each_batch_primes_its_heads_before_the_requests_that_share_them(tmp_path):
    student, teacher = PrimedModel("s"), PrimedModel("t", seconds=0.3)  # the teacher's primes outlast the rollouts
    cfg = config(tmp_path, epochs=1, batch_size=3)
    lib = run(cfg, sum_problems(6), student, teacher)
    batches = 2
    student_primes, teacher_primes = student.primes, teacher.primes
    assert len(student_primes) == batches and len(teacher_primes) == 2 * batches
    for stage, model, primes in (("student", student, student_primes), ("structure", teacher, teacher_primes[0::2]), ("extract", teacher, teacher_primes[1::2])):
        requests = [(text, at) for kind, text, at in model.sent if kind == stage]
        assert len(requests) == 6  # two batches of three problems
        for batch in range(batches):
            head, _, primed = primes[batch]
            mine = requests[3 * batch : 3 * batch + 3]
            assert all(text.startswith(head) and at >= primed for text, at in mine), stage  # each waits for its batch's prime
    for (_, _, structure_primed), (_, extract_sent, _) in zip(teacher_primes[0::2], teacher_primes[1::2]):
        assert extract_sent >= structure_primed  # the teacher's heads one after the other (docs: the RAM cache copy)
    # primes are requests like any other: in the ledger, beside the stages' calls
    plain = run(config(tmp_path / "plain", epochs=1, batch_size=3), sum_problems(6))
    assert lib.cost.calls == {"student": plain.cost.calls["student"] + batches, "teacher": plain.cost.calls["teacher"] + 2 * batches}


def test_priming_changes_no_result_and_models_that_do_not_prime_get_no_prime(tmp_path):
    plain_student, plain_teacher = ScriptedModel("s"), ScriptedModel("t")
    plain = run(config(tmp_path / "a", epochs=1), sum_problems(8), plain_student, plain_teacher)
    primed = run(config(tmp_path / "b", epochs=1), sum_problems(8), PrimedModel("s"), PrimedModel("t"))
    assert essence(plain) == essence(primed)
    assert all(params.max_tokens != prime.PRIME_PARAMS.max_tokens for model in (plain_student, plain_teacher) for _, _, params in model.calls)
