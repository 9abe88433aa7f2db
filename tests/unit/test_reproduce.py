"""`ted reproduce` without models: the plan, the state file's resume rules, the cost model, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ted.errors import ConfigError
from ted.reproduce.estimate import TYPICAL_REPLY_TOKENS, Estimator
from ted.reproduce.plan import ReproduceConfig, RunDir, Tracker, arms, plan
from tests.support import run_ted

ENDPOINT = "openai:m@http://127.0.0.1:9/v1"


def _config(tmp_path: Path, **changes: object) -> ReproduceConfig:
    values: dict[str, object] = dict(benchmark="aime", student=ENDPOINT, teacher=ENDPOINT, out=str(tmp_path / "run"))
    values.update(changes)
    return ReproduceConfig(**values)


def test_plan_is_split_then_every_distillation_then_every_evaluation(tmp_path: Path) -> None:
    config = _config(tmp_path, strategies=["teacher", "none"], teachers=["openai:t2@http://127.0.0.1:9/v1"], transfer_to=["aime24"])
    assert [arm.name for arm in arms(config)] == ["teacher", "none", "teacher@teacher2", "none@teacher2"]
    ids = [step.id for step in plan(config)]
    assert ids[:5] == ["split", "distill:teacher", "distill:none", "distill:teacher@teacher2", "distill:none@teacher2"]
    assert ids[5:] == [f"eval:{b}:{a}" for b in ("aime", "aime24") for a in ("baseline", "placebo", "teacher", "none", "teacher@teacher2", "none@teacher2")]


def test_seeds_repeat_the_chosen_strategies_with_derived_seeds_and_the_placebo_is_evaluated(tmp_path: Path) -> None:
    from ted.reproduce.report import protocol

    config = _config(tmp_path, strategies=["teacher", "usage", "none"], seeds=3, seed_strategies=["teacher"], seed=5, batch_size=4)
    names = [arm.name for arm in arms(config)]
    assert names == ["teacher", "teacher-s2", "teacher-s3", "usage", "none"]
    seeds = {arm.name: arm.seed for arm in arms(config)}
    assert seeds["teacher"] == seeds["usage"] == 5 and len({seeds["teacher"], seeds["teacher-s2"], seeds["teacher-s3"]}) == 3
    assert config.run_config(arms(config)[1], "d", "o").seed == seeds["teacher-s2"]  # each distillation runs with its own seed
    ids = [step.id for step in plan(config)]
    assert ids[6:] == ["eval:aime:baseline", "eval:aime:placebo", *(f"eval:aime:{n}" for n in names)]
    assert "placebo" not in [s.arm for s in plan(config.model_copy(update={"placebo": False}))]
    notes = " ".join(protocol(config))
    assert "Batch size 4" in notes and "B = 1 is the paper's sequential loop" in notes
    assert "ages" not in notes or "the `usage` arm" in notes
    assert "500 items" in notes and "3 distillations per arm for teacher" in notes
    with pytest.raises(ValueError, match="which --strategies does not run"):
        _config(tmp_path, strategies=["teacher"], seed_strategies=["none"])
    # the usage arm compresses with the teacher, like the teacher arm: the same calls
    est = {e.step: e for e in Estimator(config, question_tokens=50, eval_sizes={"aime": 30}).steps(plan(config))}
    assert est["distill:usage"].roles["teacher"].calls == est["distill:teacher"].roles["teacher"].calls > est["distill:none"].roles["teacher"].calls
    assert est["eval:aime:placebo"].roles["student"].prompt_tokens > est["eval:aime:baseline"].roles["student"].prompt_tokens


def test_resume_keeps_finished_steps_and_refuses_another_configuration(tmp_path: Path) -> None:
    config = _config(tmp_path, strategies=["truncate"])
    steps = plan(config)
    tracker = Tracker(RunDir(config.out), config, steps, ["ted", "reproduce"])
    tracker.open(resume=False)
    tracker.start(steps[0])
    tracker.finish(steps[0], {"samples": 100})
    tracker.start(steps[1])  # killed here: the step stays "running"
    with pytest.raises(ConfigError, match="exists: rerun with --resume"):
        Tracker(RunDir(config.out), config, steps, []).open(resume=False)
    # A result-neutral option may change on --resume; the finished step is not pending, the killed one is.
    same = config.model_copy(update={"concurrency": 3})
    again = Tracker(RunDir(config.out), same, plan(same), [])
    again.open(resume=True)
    assert [s.id for s in again.pending()] == [s.id for s in steps[1:]]
    assert again.result(steps[0]) == {"samples": 100} and again.state.command == ["ted", "reproduce"]
    moved = config.model_copy(update={"student": "openai:m@http://127.0.0.1:8123/v1", "teacher": "openai:m@http://127.0.0.1:8124/v1"})
    Tracker(RunDir(config.out), moved, plan(moved), []).open(resume=True)  # the same models on other ports: a later session's servers
    renamed = config.model_copy(update={"student": "openai:other@http://127.0.0.1:9/v1"})
    with pytest.raises(ConfigError, match=r"changed: student"):
        Tracker(RunDir(config.out), renamed, plan(renamed), []).open(resume=True)
    other = config.model_copy(update={"epochs": 1, "seed": 4})
    with pytest.raises(ConfigError, match=r"different configuration \(changed: epochs, seed\)"):
        Tracker(RunDir(config.out), other, plan(other), []).open(resume=True)
    with pytest.raises(ConfigError, match="nothing to resume"):
        Tracker(RunDir(tmp_path / "elsewhere"), config, steps, []).open(resume=True)


def test_estimate_counts_the_calls_the_pipeline_makes(tmp_path: Path) -> None:
    config = _config(tmp_path, samples=10, epochs=1, rollouts=5, batch_size=2, max_items=3, strategies=["teacher", "truncate", "none"], reply_tokens=100)
    est = Estimator(config, question_tokens=50, eval_sizes={"aime": 30})
    by_step = {e.step: e for e in est.steps(plan(config))}
    # 10 problems: one student request (n = 5) each; teacher solve, structure, extract each.
    # teacher compression: the library (one lesson per problem) passes 3 items after batch 2, is cut to 2, and passes again every batch.
    assert by_step["distill:teacher"].roles["student"].calls == 10
    assert by_step["distill:teacher"].roles["teacher"].calls == 30 + 4
    assert by_step["distill:truncate"].roles["teacher"].calls == by_step["distill:none"].roles["teacher"].calls == 30
    assert by_step["distill:teacher"].roles["student"].completion_tokens == 10 * 5 * 100
    # the unbounded library makes every later prompt longer
    assert by_step["eval:aime:none"].roles["student"].prompt_tokens > by_step["eval:aime:truncate"].roles["student"].prompt_tokens
    assert by_step["eval:aime:baseline"].roles["student"].calls == 30


def test_estimate_asks_each_teacher_solution_once_and_reads_ted_distills_limits(tmp_path: Path) -> None:
    from ted.distill.config import RunConfig

    # 3 epochs over 10 problems: structuring and extraction every epoch, the teacher's solution once per problem.
    config = _config(tmp_path, samples=10, epochs=3, rollouts=2, strategies=["truncate"], eval_limit=5)
    (est,) = [e for e in Estimator(config).steps(plan(config)) if e.step == "distill:truncate"]
    assert est.roles["teacher"].calls == 10 + 2 * 30 and est.roles["student"].calls == 30
    # No limit given: ted distill's own (RunConfig's) for every call, and a typical reply below it.
    answer, json_max = RunConfig.model_fields["max_tokens"].default, RunConfig.model_fields["json_max_tokens"].default
    assert est.roles["student"].completion_ceiling == 30 * 2 * answer
    assert est.roles["teacher"].completion_ceiling == 10 * answer + 2 * 30 * json_max
    assert est.roles["student"].completion_tokens == 30 * 2 * TYPICAL_REPLY_TOKENS < est.roles["student"].completion_ceiling
    # A max below the typical length caps the typical reply.
    short = config.model_copy(update={"max_tokens": 300})
    (capped,) = [e for e in Estimator(short).steps(plan(short)) if e.step == "distill:truncate"]
    assert capped.roles["student"].completion_tokens == capped.roles["student"].completion_ceiling == 30 * 2 * 300


BASE = ["reproduce", "--benchmark", "aime", "--student", ENDPOINT, "--teacher", ENDPOINT, "--out", "runs/x"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategies", "teacher,smart"], "--strategies"),
        (["--transfer-to", "aime"], "--transfer-to repeats the main benchmark 'aime'"),
        (["--transfer-to", "mmlu"], "unknown benchmark 'mmlu'"),
        (["--eval-data", "visualpuzzles=vp.parquet"], "--eval-data names 'visualpuzzles'"),
        (["--resume"], "nothing to resume: runs/x/state.json does not exist"),
        (["--price", "teacher=cheap"], "--price 'teacher=cheap': use ROLE=IN/OUT"),
        (["--push", "just-a-name"], "--push 'just-a-name': not a Hub dataset id like org/name"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    proc = run_ted(*BASE, *extra, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_calls_tokens_and_dollars_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "aime.jsonl").write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i), "id": str(i)}) + "\n" for i in range(7)))
    proc = run_ted(*BASE, "--eval-data", "aime.jsonl", "--samples", "20", "--epochs", "1", "--price", "teacher=1/4", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "no call made" in out and "eval_sizes={'aime': 7}" in out
    total_teacher = next(line for line in proc.stdout.splitlines() if "total" in line and "teacher" in line)
    assert total_teacher.split("│")[-2].strip() not in ("", "–")  # dollars for the priced role
    assert not (tmp_path / "runs").exists()


def test_an_arm_is_scored_by_the_eval_runner_one_list_per_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ted reproduce` scores through `ted eval`'s runner; the report reads one list of verdicts per repeat."""
    import ted.evaluate as evaluate
    from ted.evaluate import RunScores
    from ted.reproduce import units
    from ted.tasks.registry import BENCHMARKS

    asked: list[tuple[str, dict[str, object], int]] = []

    def score_run(lm, task, folder, metadata, *, limit, gen_kwargs, repeats, **_):
        asked.append((task, metadata, repeats))
        return RunScores(verdicts={"p1": [1.0, 0.0], "p2": [0.0, 0.0], "p3": [1.0, 1.0]}, no_answer=2, image_errors=0), []

    monkeypatch.setattr(evaluate, "score_run", score_run)
    evaluator = units.Evaluator(_config(tmp_path, repeats=2, benchmark="aime"), "base_url=http://127.0.0.1:1/v1/chat/completions,model=m")
    monkeypatch.setattr(evaluator, "_model", lambda: object())
    result = evaluator.arm("aime", tmp_path / "library.json")
    assert asked == [(BENCHMARKS["aime"].lm_task, {"library": str(tmp_path / "library.json")}, 2)]
    assert result["ids"] == ["p1", "p2", "p3"] and result["n"] == 3 and result["repeats"] == 2
    assert result["correct"] == [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    assert result["no_answer"] == 2 and result["calls"] == 6
