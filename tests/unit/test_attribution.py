"""`ted attribute`: a scripted student whose accuracy depends on known lessons; the estimates must find them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from ted.attribution import attribute, design, store
from ted.errors import LibraryError
from ted.library import Library
from ted.models.base import BaseChatModel, ChatResult, Message, SamplingParams, Usage
from tests.scripted import SumTask, sum_problems
from tests.support import CHECKOUT, make_library, run_ted

HELPFUL = "When adding two numbers, add the units first and carry before the tens."
HARMFUL = "When a sum looks large, round each number to the nearest ten before adding."
INERT = "When a question names a unit, repeat the unit beside the final answer."
TRUE_EFFECT = {"E1": 0.35, "E2": -0.35, "E3": 0.0}


class LessonSensitive(BaseChatModel):
    """Right with probability 0.5 + 0.35·[E1 in the prompt] − 0.35·[E2 in the prompt]; E3 changes nothing.

    Each problem's draw u is fixed by its question, so the same prompt always gets the same reply."""

    def __init__(self) -> None:
        super().__init__("scripted:lessons", "lessons", max_concurrency=64)
        self.backend = "scripted"
        self.systems: list[str] = []

    async def _chat(self, messages: list[Message], params: SamplingParams) -> ChatResult:
        system = messages[0].text if messages[0].role == "system" else ""
        self.systems.append(system)
        user = messages[-1].text
        a, b = (int(x) for x in re.findall(r"Compute (\d+) \+ (\d+)", user)[0])
        u = int.from_bytes(hashlib.sha256(user.encode()).digest()[:4], "big") / 2**32
        p = 0.5 + sum(effect for item_id, effect in TRUE_EFFECT.items() if f"[{item_id}]" in system)
        answer = a + b if u < p else a + b + 1
        return ChatResult(texts=[f"Answer: {answer}\nUsed: []"], usage=Usage(prompt_tokens=10, completion_tokens=5), requests=1)


def _library() -> Library:
    return make_library((HELPFUL, HARMFUL, INERT), name="known")


def test_the_design_gives_every_lesson_to_half_the_problems_independently() -> None:
    problems = sum_problems(41)
    present = design(["E1", "E2", "E3"], problems, seed=3)
    for item_id in ("E1", "E2", "E3"):
        assert sum(item_id in row for row in present) in (20, 21)
    assert present == design(["E1", "E2", "E3"], problems, seed=3)  # seeded
    assert present != design(["E1", "E2", "E3"], problems, seed=4)
    both = sum("E1" in row and "E2" in row for row in present)
    assert 4 <= both <= 16  # independent halves: about a quarter of the problems have both


def test_estimates_recover_a_helpful_a_harmful_and_an_inert_lesson(tmp_path: Path) -> None:
    lib, student = _library(), LessonSensitive()
    result = asyncio.run(attribute(lib, student, SumTask(), sum_problems(300), SamplingParams(temperature=0, max_tokens=64), seed=0))
    effects = {e.id: e for e in result.effects}
    assert effects["E1"].ci95[0] > 0 and effects["E2"].ci95[1] < 0  # the signs, beyond their intervals
    assert effects["E3"].ci95[0] < 0 < effects["E3"].ci95[1]  # the inert lesson: no sign claimed
    for item_id, truth in TRUE_EFFECT.items():
        low, high = effects[item_id].ci95
        assert low <= truth <= high, (item_id, effects[item_id])
    assert result.calls == 300 and all(e.n == 300 for e in result.effects)
    # Every prompt keeps the library's frame and citation instruction, even a problem that drew no lesson.
    assert all("## Experience library" in system and "Used: [E1, E3]" in system for system in student.systems)
    # Stored in the file, read back, validated.
    store(lib, result)
    again = Library.load(lib.save(tmp_path / "library.json"))
    stored = again.get("E1").attribution
    assert stored is not None and stored.n == 300 and stored.effect_ci95[0] > 0
    assert "attribution" not in json.dumps(_library().model_dump(mode="json"))  # additive: absent until measured


def test_leave_one_out_agrees_in_sign_on_a_small_library() -> None:
    result = asyncio.run(attribute(_library(), LessonSensitive(), SumTask(), sum_problems(200), SamplingParams(temperature=0), seed=1, leave_one_out=True))
    loo = {e.id: e.loo for e in result.effects}
    assert loo["E1"] > 0.2 and loo["E2"] < -0.2 and abs(loo["E3"]) < 1e-9
    assert result.calls == 200 + 4 * 200


def test_a_stored_effect_is_validated_on_load(tmp_path: Path) -> None:
    data = _library().model_dump(mode="json")
    data["items"][0]["attribution"] = {"effect": 0.1, "effect_ci95": [0.3, -0.2], "n": 10}
    with pytest.raises(LibraryError, match="attribution"):
        Library.from_dict(data)
    data["items"][0]["attribution"] = {"effect": 0.1, "effect_ci95": [-0.2, 0.3], "n": 10, "note": "x"}
    with pytest.raises(LibraryError, match="attribution"):
        Library.from_dict(data)


def test_show_and_the_card_print_the_effect(tmp_path: Path) -> None:
    from ted.cards import experiences_jsonl, render_card

    lib = _library()
    result = asyncio.run(attribute(lib, LessonSensitive(), SumTask(), sum_problems(60), SamplingParams(temperature=0), seed=0))
    store(lib, result)
    path = lib.save(tmp_path / "library.json")
    label = lib.get("E1").attribution.label()
    shown = run_ted("show", str(path), env={"COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    assert "effect [95% CI]" in shown.stdout and label in shown.stdout
    card = render_card(lib, ref="org/known@1.0.0")
    assert "Effect on accuracy [95% CI]" in card and label in card
    rows = [json.loads(line) for line in experiences_jsonl(lib).decode().splitlines()]
    assert rows[0]["attribution"]["n"] == 60
    sys.path.insert(0, str(CHECKOUT / "space"))
    import tedspace

    shown = tedspace.block_html(lib)
    assert "ted-effects" in shown and label in shown
    assert "ted-effects" not in tedspace.block_html(_library())  # nothing measured, no table


def test_attribute_refuses_an_empty_library_in_one_line(tmp_path: Path) -> None:
    path = Library(name="empty").save(tmp_path / "library.json")
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": p.id, "question": p.question, "answer": p.answer}) + "\n" for p in sum_problems(5)))
    proc = run_ted("attribute", str(path), "--data", str(data), "--student", "openai:m@http://127.0.0.1:9/v1")
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error:") and "no lesson" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
