"""`ted ask` / `ted.compare`: the same question, the same student and sampling, the library the only
difference; both replies graded; bad input is one line."""

from __future__ import annotations

import asyncio
import json

from ted.compare import side_by_side
from ted.library import Library
from ted.models.base import SamplingParams
from tests.scripted import ScriptedModel, SumTask, sum_problems
from tests.support import run_ted


def test_the_library_is_the_only_difference() -> None:
    lib = Library(name="demo")
    lib.add("When two numbers are added, add the ones digits first, then the tens.", 1)
    student = ScriptedModel("student")
    problem = sum_problems(1)[0]
    result = asyncio.run(side_by_side(student, lib, problem, SumTask(), SamplingParams(temperature=0, max_tokens=64, seed=0)))
    (_, plain, p1), (_, with_lib, p2) = student.calls
    assert p1 == p2 and plain[1:] == with_lib[1:]  # same sampling, same question
    assert "[E1]" not in plain[0].text and "[E1] When two numbers are added" in with_lib[0].text
    assert with_lib[0].text.startswith(plain[0].text)  # the library is appended to the same system prompt
    assert result.without.answer is not None and result.with_library.answer is not None
    assert result.without.cited == [] and result.with_library.cited == ["E1"]


def test_ask_needs_exactly_one_source_of_the_question(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lib = Library(name="demo")
    lib.save(tmp_path / "lib.json")
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    for extra in ([], ["--question", "What is 2 + 2?", "--data", "q.jsonl"]):
        result = run_ted("ask", "lib.json", *extra, "--student", "gguf:none.gguf", cwd=tmp_path)
        assert result.returncode == 2 and "one of the two" in result.stderr and "Traceback" not in result.stderr
    result = run_ted("ask", "lib.json", "--data", "q.jsonl", "--index", "3", "--student", "gguf:none.gguf", cwd=tmp_path)
    assert result.returncode == 2 and "--index 3" in result.stderr
