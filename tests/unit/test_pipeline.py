import asyncio
import json
import random

import pytest

from ted.distill.checkpoint import checkpoint_path
from ted.distill.config import RunConfig
from ted.distill.pipeline import Distiller
from ted.distill.compress import compress
from ted.distill.extract import apply_ops, extract
from ted.distill.config import derive_seed
from ted.distill.rollouts import rollouts
from ted.distill.structure import structure
from ted.distill.teacher_solution import teacher_solution
from ted.errors import ConfigError, ModelError
from ted.library import Rejection
from ted.models.base import SamplingParams
from ted.tokens import get_counter
from tests.scripted import ScriptedModel, SumTask, sum_problems


def config(tmp_path, **overrides) -> RunConfig:
    base = dict(data="mem", student="scripted:s", teacher="scripted:t", out=str(tmp_path / "library.json"),
                epochs=2, rollouts=3, batch_size=4, max_items=4, budget_tokens=400, seed=7)
    base.update(overrides)
    return RunConfig(**base)


def run(cfg, problems, student=None, teacher=None, resume=False, val=None):
    d = Distiller(cfg, student or ScriptedModel("s"), teacher or ScriptedModel("t"), SumTask(), problems, val)
    return asyncio.run(d.run(resume=resume))


def essence(lib) -> dict:
    """What must match between runs: items, provenance and learning curve (not timings)."""
    data = lib.model_dump(mode="json")
    return {k: data[k] for k in ("items", "history", "next_id")} | {"curve": data["metrics"]["curve"]}


def test_run_produces_library_within_budget_with_usage_and_ledger(tmp_path):
    lib = run(config(tmp_path), sum_problems(10))
    assert 0 < len(lib.items) <= 4 and lib.fits()
    assert any(e.usage > 0 for e in lib.items)
    assert [p.epoch for p in lib.metrics.curve] == [1, 2]
    # per problem per epoch: k rollouts (n=3 in one request counts 3) + structure + extract; one solution per problem per run
    assert lib.cost.calls["student"] == 2 * 10 * 3
    assert lib.cost.calls["teacher"] >= 10 + 2 * 10 * 2
    assert lib.cost.roles["teacher"].prompt_tokens > 0
    assert lib.source.samples == 10 and lib.source.batch_size == 4
    assert lib.config["rollouts"] == 3


def test_fixed_seed_is_deterministic_and_seed_matters(tmp_path):
    a = run(config(tmp_path), sum_problems(9))
    b = run(config(tmp_path), sum_problems(9))
    c = run(config(tmp_path, seed=8), sum_problems(9))
    assert essence(a) == essence(b)
    assert essence(a) != essence(c)


def test_result_does_not_depend_on_completion_order(tmp_path):
    class Jittery(ScriptedModel):
        async def _chat(self, messages, params):
            await asyncio.sleep(random.random() / 200)
            return await super()._chat(messages, params)

    a = run(config(tmp_path, batch_size=5), sum_problems(10))
    b = run(config(tmp_path, batch_size=5), sum_problems(10), student=Jittery("s"), teacher=Jittery("t"))
    assert essence(a) == essence(b)


def test_batch_of_one_equals_hand_run_sequential_loop(tmp_path):
    cfg = config(tmp_path, batch_size=1, epochs=2)
    problems = sum_problems(6)
    lib = run(cfg, problems)

    # The paper's loop, written out by hand with the stage functions.
    student, teacher, task, counter = ScriptedModel("s"), ScriptedModel("t"), SumTask(), get_counter()
    d = Distiller(cfg, student, teacher, task, problems)
    hand = d.new_state().library
    step = 0

    def params(role, *parts, n=1, json_out=False):
        return SamplingParams(n=n, temperature=cfg.temperature if role == "student" else cfg.teacher_temperature,
                              max_tokens=cfg.json_max_tokens if json_out else cfg.max_tokens if role == "student" else cfg.teacher_max_tokens or cfg.max_tokens,
                              seed=derive_seed(cfg.seed, role, *parts))

    teacher_chains = {}  # the teacher's solution is structured once, then reused

    async def loop():
        nonlocal step
        for epoch in range(cfg.epochs):
            order = list(problems)
            random.Random(f"{cfg.seed}:epoch:{epoch}").shuffle(order)
            for p in order:
                key = (epoch, p.id)
                runs, _ = await rollouts(student, hand, p, task, params("student", *key, n=cfg.rollouts))
                sol, _ = await teacher_solution(teacher, p, task, params("teacher", 0, p.id, "solve"))  # asked once per run
                chains, _ = await structure(teacher, p, runs, sol, params("teacher", *key, "structure", json_out=True), teacher_chains.get(p.id))
                if chains.teacher_chained:
                    teacher_chains.setdefault(p.id, chains.teacher)
                ext, _ = await extract(teacher, hand, p, runs, sol, chains, params("teacher", *key, "extract", json_out=True), counter)
                step += 1
                hand.record_usage(r.cited for r in runs)
                hand.record_seen(hand.ids(), len(runs))
                hand.record_verdicts(ext.verdicts)
                apply_ops(hand, ext.ops, step, p.id)
                await compress(hand, cfg.compression, counter, step, cfg.seed, teacher=teacher,
                               params=params("teacher", epoch, step, "compress", json_out=True))

    asyncio.run(loop())
    assert lib.model_dump(mode="json")["items"] == hand.model_dump(mode="json")["items"]
    assert lib.model_dump(mode="json")["history"] == hand.model_dump(mode="json")["history"]


class Crashing(ScriptedModel):
    """Raises a ModelError on the `crash_at`-th call, like an endpoint going away mid-run."""

    def __init__(self, name, crash_at):
        super().__init__(name)
        self.crash_at, self.count = crash_at, 0

    async def _chat(self, messages, params):
        self.count += 1
        if self.count == self.crash_at:
            raise ModelError("cannot reach http://127.0.0.1:1/v1: connection refused")
        return await super()._chat(messages, params)


@pytest.mark.parametrize("crash_at", [3, 17, 30, 45])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, crash_at):
    problems = sum_problems(10)
    reference = run(config(tmp_path / "ref"), problems)
    cfg = config(tmp_path / "crash")
    with pytest.raises(ModelError):
        run(cfg, problems, teacher=Crashing("t", crash_at))
    assert checkpoint_path(cfg.out).exists() or crash_at < 20  # the first batch: all 10 solutions asked ahead, 4 structure, 4 extract
    resumed = run(cfg, problems, resume=True)
    assert essence(resumed) == essence(reference)


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path):
    problems = sum_problems(8)
    cfg = config(tmp_path)
    with pytest.raises(ModelError):
        run(cfg, problems, teacher=Crashing("t", 30))
    with pytest.raises(ConfigError, match="different configuration.*rollouts"):
        run(config(tmp_path, rollouts=2), problems, resume=True)
    # options that do not change the result may differ
    run(config(tmp_path, concurrency=3), problems, resume=True)


def test_checkpoint_is_valid_json_after_every_batch(tmp_path):
    cfg = config(tmp_path, epochs=1, batch_size=1)
    seen = []

    class Watch(ScriptedModel):
        async def _chat(self, messages, params):
            path = checkpoint_path(cfg.out)
            if path.exists():
                seen.append(json.loads(path.read_text())["batch"])
            return await super()._chat(messages, params)

    run(cfg, sum_problems(6), student=Watch("s"))
    # Each batch's checkpoint is written while the next batch starts, and awaited before the one after:
    # the calls of batch k+2 see at least batch k's, never an older or a torn one.
    assert seen == sorted(seen) and seen[-1] >= 6 - 2


def test_budget_smaller_than_one_item_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="smaller than one experience"):
        Distiller(config(tmp_path, budget_tokens=20), ScriptedModel(), ScriptedModel(), SumTask(), sum_problems(2))


def test_validation_curve_and_keep_best(tmp_path):
    lib = run(config(tmp_path, epochs=3, keep_best=True), sum_problems(8), val=sum_problems(12)[8:])
    curve = lib.metrics.curve
    assert [p.epoch for p in curve] == [1, 2, 3]
    assert all(0 <= p.val_accuracy <= 1 for p in curve)
    assert lib.metrics.baseline is not None
    assert lib.metrics.with_library == max(p.val_accuracy for p in curve)


@pytest.mark.parametrize("strategy", ["teacher", "truncate", "random", "usage"])
def test_every_strategy_ends_within_budget(tmp_path, strategy):
    lib = run(config(tmp_path, compression=strategy, max_items=3), sum_problems(10))
    assert lib.fits() and len(lib.items) <= 3


def test_the_usage_arm_shows_the_teacher_usage_and_priority_only(tmp_path):
    """The paper's compression: s(e) = log(1 + usage); ted's `teacher` arm adds ages and verdicts."""
    prompts_of = {}
    for strategy in ("teacher", "usage"):
        teacher = ScriptedModel("t")
        run(config(tmp_path, compression=strategy, max_items=3, epochs=1), sum_problems(10), teacher=teacher)
        prompts_of[strategy] = [m[0].text for stage, m, _ in teacher.calls if stage == "compress"]
    assert prompts_of["usage"] and prompts_of["teacher"]
    assert all("priority=" in p and " age=" not in p and "verdicts" not in p for p in prompts_of["usage"])
    assert all(" age=" in p and "verdicts=" in p for p in prompts_of["teacher"])


def test_none_strategy_exceeds_budget(tmp_path):
    lib = run(config(tmp_path, compression="none", max_items=3), sum_problems(10))
    assert len(lib.items) > 3


def test_extraction_tally_counts_accepted_and_rejected(tmp_path):
    class Sloppy(ScriptedModel):
        def reply(self, stage, messages, params, i):
            if stage == "extract":
                return json.dumps({"operations": [
                    {"op": "add", "text": "<a new general lesson>"},
                    {"op": "update", "id": "E99", "text": "When answering, recheck every step of the computation first."},
                    {"op": "add", "text": "When computing, restate what is asked before anything at all."},
                ]})
            return super().reply(stage, messages, params, i)

    lib = run(config(tmp_path, epochs=1), sum_problems(4), teacher=Sloppy("t"))
    tally = lib.metrics.extraction
    assert tally.rejected[Rejection.PLACEHOLDER] == 4
    # the four problems share one snapshot, an empty library: the update of "E99" can replace nothing,
    # so it is an add; each lesson is new to each problem, and applied once
    assert Rejection.UNKNOWN_ID not in tally.rejected
    assert tally.accepted == 2 and tally.rejected[Rejection.DUPLICATE_IN_BATCH] == 6
    texts = [e.text for e in lib.items]
    assert texts.count("When computing, restate what is asked before anything at all.") == 1
    assert texts.count("When answering, recheck every step of the computation first.") == 1


class Counting(ScriptedModel):
    """Counts requests per stage."""

    def __init__(self, name):
        super().__init__(name)
        self.stages = []

    async def _chat(self, messages, params):
        self.stages.append(self.stage(messages))
        return await super()._chat(messages, params)


@pytest.mark.parametrize("fresh, solves", [(False, 6), (True, 3 * 6)])
def test_teacher_solutions_once_per_run_unless_fresh(tmp_path, fresh, solves):
    teacher = Counting("t")
    lib = run(config(tmp_path, epochs=3, fresh_teacher_solutions=fresh), sum_problems(6), teacher=teacher)
    assert teacher.stages.count("teacher_solve") == solves
    assert teacher.stages.count("structure") == teacher.stages.count("extract") == 3 * 6
    assert lib.config["fresh_teacher_solutions"] is fresh  # recorded with the run's options


@pytest.mark.parametrize("fresh, structured", [(False, 6), (True, 3 * 6)])
def test_the_teachers_trace_is_structured_once_per_run_unless_fresh(tmp_path, fresh, structured):
    class Prompts(ScriptedModel):
        def __init__(self, name):
            super().__init__(name)
            self.prompts = []

        async def _chat(self, messages, params):
            self.prompts.append((self.stage(messages), messages[-1].text))
            return await super()._chat(messages, params)

    teacher = Prompts("t")
    run(config(tmp_path, epochs=3, fresh_teacher_solutions=fresh), sum_problems(6), teacher=teacher)
    structure_prompts = [text for stage, text in teacher.prompts if stage == "structure"]
    assert len(structure_prompts) == 3 * 6
    assert sum("(teacher)" in text for text in structure_prompts) == structured
    extract_prompts = [text for stage, text in teacher.prompts if stage == "extract"]
    assert len(extract_prompts) == 3 * 6 and all("## Your chain (teacher" in text for text in extract_prompts)  # still shown every epoch


def test_resume_never_asks_again_for_solutions_it_has(tmp_path):
    problems = sum_problems(10)
    cfg = config(tmp_path)
    with pytest.raises(ModelError):
        run(cfg, problems, teacher=Crashing("t", 30))  # after the first batch: every solution is in its checkpoint
    saved = json.loads(checkpoint_path(cfg.out).read_text())
    assert len(saved["solutions"]) == 10 and 0 < len(saved["teacher_chains"]) < 10  # chains of the problems structured so far
    teacher = Counting("t")
    resumed = run(cfg, problems, teacher=teacher, resume=True)
    assert "teacher_solve" not in teacher.stages
    assert essence(resumed) == essence(run(config(tmp_path / "ref"), problems))


def test_the_ledger_keeps_requests_and_generations_apart() -> None:
    from ted.distill.ledger import Ledger
    from ted.library import Library
    from ted.models.base import ChatResult

    ledger = Ledger()
    ledger.record("student", ChatResult(texts=["a", "b", "c"], requests=1))  # a server that honours n=3
    ledger.record("student", ChatResult(texts=["a", "b", "c"], requests=3))  # llama.cpp in process: one call per sample
    lib = Library()
    ledger.write_into(lib, 1.0)
    assert lib.cost.calls == {"student": 4, "teacher": 0} and lib.cost.generations == {"student": 6, "teacher": 0}
    assert lib.cost.roles["student"].calls == 4 and lib.cost.roles["student"].generations == 6


def test_a_failed_call_cancels_and_awaits_its_siblings_before_the_error_surfaces() -> None:
    import asyncio

    from ted.distill.calls import gather_or_cancel

    finished: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            finished.append("slow cleaned up")

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("endpoint down")

    async def main() -> list[str]:
        try:
            await gather_or_cancel(slow(), failing(), slow())
        except ValueError:
            return list(finished)  # by the time the error arrives, nothing is left running
        return []

    assert asyncio.run(main()) == ["slow cleaned up", "slow cleaned up"]


class Recorder:
    """A Reporter that keeps a copy of every status it was shown."""

    def __init__(self):
        self.seen = []

    def update(self, status):
        self.seen.append((status.batch, status.progress, status.calls()))

    def log(self, message):
        pass


def test_progress_moves_within_a_batch(tmp_path):
    """One batch holding every problem (the demo's old shape) must not sit at 0/N until it ends."""
    reporter = Recorder()
    problems = sum_problems(6)
    d = Distiller(config(tmp_path, epochs=1, batch_size=6), ScriptedModel("s"), ScriptedModel("t"), SumTask(), problems, reporter=reporter)
    asyncio.run(d.run())
    inside = [progress for batch, progress, _ in reporter.seen if 0 < progress < 6]
    assert len(set(inside)) >= 6  # every finished call of the batch moves the bar
    assert [p for _, p, _ in reporter.seen] == sorted(p for _, p, _ in reporter.seen)  # never backwards
    last_calls = reporter.seen[-1][2]
    assert "rollouts 6/6" in last_calls and "structure 6/6" in last_calls and "extract 6/6" in last_calls
    assert "solutions 6/6" in last_calls


class Prolific(ScriptedModel):
    """A teacher that proposes three new, distinct lessons for every problem (no number of the problem in them)."""

    def reply(self, stage, messages, params, i):
        if stage == "extract":
            import re as _re
            import string

            number = int(_re.search(r"Compute (\d+) \+", messages[-1].text).group(1))
            tag = lambda k: "".join(string.ascii_lowercase[(number * 3 + k) // 26 ** d % 26] for d in range(3))  # noqa: E731
            return json.dumps({"operations": [
                {"op": "add", "text": f"When a sum looks off, recheck the carries of kind {tag(k)} before answering."} for k in range(3)
            ]})  # fmt: skip
        return super().reply(stage, messages, params, i)


@pytest.mark.parametrize("strategy", ["none", "teacher", "truncate", "random"])
def test_every_strategys_library_loads_after_a_long_run(tmp_path, strategy):
    """170 problems × 3 new lessons: 510 additions, past the 500 items `Library.load` accepts.
    `none` stops adding at the cap (tallied, logged); whatever a run returns, saved, loads again."""
    from ted.library import Library
    from ted.limits import MAX_ITEMS

    cfg = config(tmp_path, compression=strategy, epochs=1, rollouts=1, batch_size=64, max_items=5, budget_tokens=400)
    lib = run(cfg, sum_problems(170), teacher=Prolific("t"))
    again = Library.load(lib.save(tmp_path / "saved" / "library.json"))
    assert again.ids() == lib.ids()
    if strategy == "none":
        assert len(lib.items) == MAX_ITEMS
        assert lib.metrics.extraction.rejected[Rejection.LIBRARY_FULL] == 510 - MAX_ITEMS
    else:
        assert len(lib.items) <= 5
