"""What a reproduction will cost before it starts (`ted reproduce --dry-run`): calls and tokens per step.

A model of the calls the pipeline makes, from the configuration alone — no call is made. The
call structure is the pipeline's stage table (`ted.distill.progress`) and every limit the
`RunConfig` each arm's `ted distill` runs with (its defaults included), so the two cannot drift:

- per problem and epoch, the batch stages: one student request with `n = rollouts` (servers
  that ignore `n`, such as llama.cpp, take `rollouts` requests with the same tokens in all but
  the prompt), one structuring and one extraction call; the teacher's own solution once per
  problem and run (every epoch with per-epoch solutions);
- with `teacher` compression, one call per batch once the library is full (it fills at one
  accepted lesson per problem, `LESSON_TOKENS` each, up to the item or token budget);
  `truncate`, `random` and `none` compress without calls; `none` lets the library grow;
- evaluation: one call per problem and repeat, per arm and benchmark, the arm's final library in
  every prompt;
- prompt tokens: each prompt file's own length, the question (measured on the local evaluation
  copy when given, else `QUESTION_TOKENS`), the library in force, and the traces a stage reads;
- completion tokens: a typical answer, not the maximum — `--reply-tokens` (default
  `TYPICAL_REPLY_TOKENS`, an assumption, never more than the call's max tokens) per answer,
  `CHAIN_FRACTION` of the traces per structuring, `OPS_TOKENS` per extraction, `COMPRESS_FILL` of
  the budget per compression; and beside it the ceiling, every call at its max tokens.

Tokens are counted with the budget tokenizer (cl100k); servers count with their own, so expect
differences of some percent on top of the model's own error. Dollars come from `--price`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import jinja2

from ted.limits import TEACHER_STRATEGIES
from ted.distill.progress import STAGE_ROLE, Stage, batch_stages
from ted.library import placebo_block
from ted.reproduce.plan import BASELINE, PLACEBO, Arm, ReproduceConfig, Step, arms
from ted.tasks import registry
from ted.tokens import get_counter

# A worked competition solution from an instruct model (an assumption, not a measurement; thinking
# models write thousands of tokens of reasoning: set --reply-tokens to what yours write).
TYPICAL_REPLY_TOKENS = 1000
QUESTION_TOKENS = 120  # a competition problem statement with its options, when no local copy says otherwise
LESSON_TOKENS = 40  # one library item: a sentence or two
CHAIN_FRACTION = 0.5  # a structured chain restates a trace in about half its tokens
OPS_TOKENS = 150  # an extraction reply: one or two operations in JSON
COMPRESS_FILL = 0.7  # a compression reply rewrites the library to about this share of its budget
LIBRARY_BLOCK = 20  # tokens of the block around the items ("Experiences:" header, ids)


@dataclass
class Cost:
    """Calls and tokens of one step or role; `completion_ceiling`: every call at its max tokens."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion_ceiling: int = 0

    def add(self, calls: int, prompt: float, completion: float, ceiling: int) -> None:
        self.calls += calls
        self.prompt_tokens += round(calls * prompt)
        self.completion_tokens += round(calls * min(completion, ceiling))
        self.completion_ceiling += calls * ceiling

    def usd(self, price: tuple[float, float] | None, ceiling: bool = False) -> float | None:
        completion = self.completion_ceiling if ceiling else self.completion_tokens
        return None if price is None else (self.prompt_tokens * price[0] + completion * price[1]) / 1e6


@dataclass
class StepEstimate:
    step: str
    roles: dict[str, Cost] = field(default_factory=dict)

    def to_dict(self, prices: dict[str, tuple[float, float]]) -> dict[str, Any]:
        roles = {role: {**asdict(cost), "usd": cost.usd(prices.get(role))} for role, cost in self.roles.items()}
        priced = [r["usd"] for r in roles.values() if r["usd"] is not None]
        return {"step": self.step, "roles": roles, "usd": sum(priced) if priced else None}


def _template_tokens(name: str) -> int:
    """Tokens of a prompt file's fixed text: rendered with every value empty and every condition false."""
    source = resources.files("ted.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    return get_counter().count(jinja2.Environment(undefined=jinja2.Undefined).from_string(source).render())


class Estimator:
    """The cost model above, for one configuration; `question_tokens` and `eval_sizes` may be measured."""

    def __init__(self, config: ReproduceConfig, question_tokens: int = QUESTION_TOKENS, eval_sizes: dict[str, int] | None = None):
        self.c = config
        self.question_tokens = question_tokens
        self.q = question_tokens + _template_tokens("task_question")
        self.eval_sizes = {b: (eval_sizes or {}).get(b, registry.benchmark(b).eval_size) for b in config.benchmarks}
        if config.eval_limit:
            self.eval_sizes = {b: min(n, config.eval_limit) for b, n in self.eval_sizes.items()}
        self.reply = config.reply_tokens or TYPICAL_REPLY_TOKENS
        self.eval_max = {b: config.eval_max_tokens or registry.benchmark(b).max_gen_toks for b in config.benchmarks}
        self.fixed = {name: _template_tokens(name) for name in ("solve", "teacher_solve", "structure", "extract", "compress")}

    def batches(self, strategy: str) -> tuple[list[tuple[int, int, bool]], int]:
        """Per batch: (problems, library tokens in its snapshot, whether the teacher compresses after it); final tokens.

        One accepted lesson per problem; over the item or token budget, `teacher` compresses to
        COMPRESS_FILL of it with one call, `truncate` and `random` cut to the budget, `none` keeps all.
        """
        c = self.c
        cap = min(c.max_items, c.budget_tokens // LESSON_TOKENS)
        items, out = 0, []
        for _ in range(c.epochs):
            for start in range(0, c.samples, c.batch_size):
                size = min(c.batch_size, c.samples - start)
                before = LIBRARY_BLOCK + items * LESSON_TOKENS
                items += size
                over = strategy != "none" and items > cap
                if over:
                    items = int(COMPRESS_FILL * cap) if strategy in TEACHER_STRATEGIES else cap
                out.append((size, before, over and strategy in TEACHER_STRATEGIES))
        return out, LIBRARY_BLOCK + items * LESSON_TOKENS

    def distill(self, arm: Arm) -> StepEstimate:
        c = self.c
        run = c.run_config(arm, data="", out="")  # the options and defaults the arm's `ted distill` runs with
        k = c.rollouts
        answer = {role: run.max_tokens_for(role, json_out=False) for role in ("student", "teacher")}
        json_max = run.max_tokens_for("teacher", json_out=True)
        reply = {role: min(self.reply, limit) for role, limit in answer.items()}
        traces = k * reply["student"] + reply["teacher"]  # what structuring reads: the rollouts and the teacher's solution

        def call(stage: Stage, lib: int) -> tuple[float, float, int]:
            """One call of `stage` with `lib` library tokens in force: prompt, typical completion, ceiling."""
            if stage == "rollouts":
                return self.fixed["solve"] + lib + self.q, k * reply["student"], k * answer["student"]
            if stage == "solve":
                return self.fixed["teacher_solve"] + self.q, reply["teacher"], answer["teacher"]
            if stage == "structure":
                return self.fixed["structure"] + self.q + traces, traces * CHAIN_FRACTION, json_max
            if stage == "extract":
                return self.fixed["extract"] + lib + self.q + traces * CHAIN_FRACTION, OPS_TOKENS, json_max
            return self.fixed["compress"] + lib, COMPRESS_FILL * c.budget_tokens, json_max  # lib: with the batch's new lessons

        roles = {"student": Cost(), "teacher": Cost()}
        if not run.fresh_teacher_solutions:  # asked once per problem and run, ahead of the batches
            roles[STAGE_ROLE["solve"]].add(c.samples, *call("solve", 0))
        batches, _ = self.batches(arm.strategy)
        for size, lib, compresses in batches:
            for stage in batch_stages(run.fresh_teacher_solutions):
                roles[STAGE_ROLE[stage]].add(size, *call(stage, lib))
            if compresses:
                roles[STAGE_ROLE["compress"]].add(1, *call("compress", lib + size * LESSON_TOKENS))
        return StepEstimate(f"distill:{arm.name}", roles)

    def evaluate(self, benchmark: str, arm: Arm | None, control: str = BASELINE) -> StepEstimate:
        """One evaluation: of `arm`'s final library, or (arm None) of the control named (baseline, placebo)."""
        c = self.c
        n = self.eval_sizes[benchmark] * c.repeats
        if arm is not None:
            lib = self.batches(arm.strategy)[1]
        else:
            lib = get_counter().count(placebo_block()) if control == PLACEBO else 0
        cost = Cost()
        cost.add(n, self.fixed["solve"] + lib + self.q, self.reply, self.eval_max[benchmark])
        return StepEstimate(f"eval:{benchmark}:{arm.name if arm else control}", {"student": cost})

    def steps(self, steps: list[Step]) -> list[StepEstimate]:
        by_name = {arm.name: arm for arm in arms(self.c)}
        out = []
        for step in steps:
            if step.kind == "split":
                out.append(StepEstimate(step.id))
            elif step.kind == "distill":
                out.append(self.distill(by_name[step.arm or ""]))
            elif step.kind == "attribute":  # one call per problem, with about half the library
                cost = Cost()
                cost.add(self.c.attribute, self.fixed["solve"] + self.batches(by_name[step.arm or ""].strategy)[1] / 2 + self.q, self.reply, self.eval_max[step.benchmark or ""])
                out.append(StepEstimate(step.id, {"student": cost}))
            else:
                out.append(self.evaluate(step.benchmark or "", by_name.get(step.arm or ""), step.arm or BASELINE))
        return out

    def assumptions(self) -> dict[str, Any]:
        return {
            "question_tokens": self.question_tokens, "question_prompt_tokens": self.q, "reply_tokens": self.reply,
            "lesson_tokens": LESSON_TOKENS, "chain_fraction": CHAIN_FRACTION, "ops_tokens": OPS_TOKENS,
            "compress_fill": COMPRESS_FILL, "eval_sizes": self.eval_sizes, "eval_max_tokens": self.eval_max, "server_honours_n": True,
        }  # fmt: skip


def total(estimates: list[StepEstimate]) -> dict[str, Cost]:
    roles: dict[str, Cost] = {}
    for estimate in estimates:
        for role, cost in estimate.roles.items():
            into = roles.setdefault(role, Cost())
            into.calls += cost.calls
            into.prompt_tokens += cost.prompt_tokens
            into.completion_tokens += cost.completion_tokens
            into.completion_ceiling += cost.completion_ceiling
    return roles
