"""`ted log`: read a run's call log — every model call, and what became of each teacher proposal.

Why: a run that writes 0 lessons must say why with one command (`ted log OUT --rejected`).
Everything shown is the log's text as it was written: printed as plain text (never Rich markup),
with control and bidirectional characters made visible, so a model's reply cannot restyle or
rewrite the terminal. The format of a record is in docs/call-log.md.
"""

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Optional

import typer

from ted.shown import visible

EXCERPT = 160  # characters of a reply or a lesson on a one-line listing (--full shows everything the log holds)


def excerpt(text: object, limit: int = EXCERPT) -> str:
    """`text` on one line, quoted, at most `limit` characters."""
    shown = visible(text or "")
    return '"' + shown[:limit] + ("…" if len(shown) > limit else "") + '"'


def _where(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}" if record.get("epoch") is not None else "", f"step {record['step']}" if record.get("step") is not None else ""]
    parts += [str(record.get("arm") or ""), str(record.get("problem") or "")]  # `arm`: ted eval's baseline or with_library
    return visible(" ".join(part for part in parts if part)) or "-"


def _call_line(number: int, record: dict[str, Any]) -> str:
    usage = record.get("usage") or {}
    tokens = f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tok" if usage else "- tok"
    if usage.get("cached_prompt_tokens"):
        tokens += f" ({usage['cached_prompt_tokens']} cached)"
    replies = record.get("replies") or []
    finish = ",".join(sorted({str(r["finish_reason"]) for r in replies if r.get("finish_reason")})) or "-"
    head = f"#{number} {visible(record.get('stage', '?'))} · {visible(record.get('role', '?'))} · {_where(record)} · {record.get('seconds', 0)}s · {tokens} · {visible(finish)}"
    if record.get("retries"):
        head += f" · {record['retries']} retries"
    if record.get("error"):
        return f"{head}\n    error: {excerpt(record['error'], 400)}"
    more = f" (+{len(replies) - 1} more)" if len(replies) > 1 else ""
    return f"{head}\n    {excerpt(replies[0].get('content') if replies else '')}{more}"


def _call_full(number: int, record: dict[str, Any]) -> str:
    lines = [_call_line(number, record).split("\n")[0], f"  model {visible(record.get('model', '?'))} · params {visible(json.dumps(record.get('params')))}"]
    for message in record.get("messages") or []:
        images = f" [images: {', '.join(visible(i) for i in message.get('images', []))}]" if message.get("images") else ""
        lines += [f"  ── {visible(message.get('role', '?'))}{images} ──", visible(message.get("text", ""), lines=True)]
    for index, reply in enumerate(record.get("replies") or []):
        lines.append(f"  ── reply {index + 1} (finish: {visible(reply.get('finish_reason'))}) ──")
        if reply.get("reasoning"):
            lines += ["  [reasoning]", visible(reply["reasoning"], lines=True), "  [answer]"]
        lines.append(visible(reply.get("content", ""), lines=True))
    if record.get("error"):
        lines.append(f"  error: {visible(record['error'])}")
    return "\n".join(lines)


def _rejected_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Per extraction, what the teacher proposed and why it was refused; then the totals."""
    pending: list[dict[str, Any]] = []  # a problem's proposals come before its extraction record
    accepted, reasons, unusable, nothing, problems = 0, Counter[str](), 0, 0, 0
    for record in records:
        if record["kind"] == "proposal":
            pending.append(record)
            continue
        if record["kind"] != "extraction":
            continue
        problems += 1
        refused = [p for p in pending if p.get("rejection")]
        accepted += sum(1 for p in pending if not p.get("rejection"))
        reasons.update(str(p["rejection"]) for p in refused)
        pending = []
        where = _where(record)
        if record.get("skipped"):
            continue
        if not record.get("structured", True):
            yield f"{where}: structuring reply unusable; extraction saw the raw traces"
        if not record.get("parsed", True):
            unusable += 1
            yield f"{where}: extraction reply unusable (no valid JSON for the schema after one re-ask); the teacher's last reply:\n    {excerpt(record.get('reply'), 600)}"
            continue
        if not record.get("proposed"):
            nothing += 1
            yield f"{where}: the teacher proposed nothing; its diagnosis: {excerpt(record.get('diagnosis'), 400)}"
            continue
        if refused:
            again = " (asked again once, shown why all were refused)" if record.get("asked_again") else ""
            yield f"{where}: {record.get('proposed')} proposed, {record.get('accepted', 0)} accepted{again}; diagnosis: {excerpt(record.get('diagnosis'), 200)}"
        for proposal in refused:
            target = f" {visible(proposal['id'])}" if proposal.get("id") else ""
            yield f"    rejected {visible(proposal.get('op', '?'))}{target} ({visible(proposal.get('detail') or proposal['rejection'])}): {excerpt(proposal.get('text'), 400)}"
    by_reason = ", ".join(f"{visible(reason)} {n}" for reason, n in reasons.most_common())
    yield (
        f"{problems} extractions: {accepted} proposals accepted, {sum(reasons.values())} rejected"
        + (f" ({by_reason})" if by_reason else "")
        + f"; {unusable} replies unusable; {nothing} proposed nothing"
    )


def log(
    ref: Annotated[str, typer.Argument(metavar="OUT_OR_LOG", help="A run's --out (folder or library file), or its .calls.jsonl.")],
    rejected: Annotated[bool, typer.Option("--rejected", help="What the teacher proposed and why each refused proposal was refused.")] = False,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", metavar="STAGE", help="Only these stages (repeat the flag): rollouts, solve, structure, extract, compress, validate, prime, probe, eval.")] = None,
    problem: Annotated[Optional[str], typer.Option("--problem", metavar="ID", help="Only this problem id.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Each call in full: messages, replies, reasoning.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The matching records as JSON lines.")] = False,
) -> None:
    """Show a run's call log: every model call (stage, problem, tokens, seconds, reply), or with --rejected why proposals were refused."""
    from ted.models.calllog import find_log, read_log

    path = find_log(ref)
    skipped = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal skipped
        for record in read_log(path):
            if record is None:
                skipped += 1
            elif (not stage or record.get("stage") in stage) and (problem is None or record.get("problem") == problem):
                if not rejected or record["kind"] in ("proposal", "extraction"):
                    yield record

    def out(text: str) -> None:
        sys.stdout.write(visible(text, lines=True) + "\n")  # every line, whatever it holds: nothing reaches the terminal unseen

    try:
        if as_json:
            for record in records():
                if not rejected or record["kind"] == "extraction" or record.get("rejection"):
                    sys.stdout.write(json.dumps(record) + "\n")  # ASCII: every control or bidi character as a \u escape
        elif rejected:
            for line in _rejected_lines(records()):
                out(line)
        else:
            counts: Counter[str] = Counter()
            errors = 0
            for record in records():
                if record["kind"] != "call":
                    continue
                counts[str(record.get("stage", "?"))] += 1
                errors += bool(record.get("error"))
                out((_call_full if full else _call_line)(sum(counts.values()), record))
            stages = ", ".join(f"{visible(name)} {n}" for name, n in counts.items())
            out(f"{sum(counts.values())} calls ({stages or 'none'}), {errors} failed · {path}")
        if skipped:
            out(f"{skipped} lines of {path} were not records (cut off by a kill, or not ted's) and were skipped")
        sys.stdout.flush()
    except BrokenPipeError:  # `ted log … | head`: the reader has what it wanted
        pass


def register(app: typer.Typer) -> None:
    app.command()(log)
