"""`ted eval`: score a student on a benchmark with and without a library, side by side."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ted.commands.options import finite, with_options

if TYPE_CHECKING:
    from ted.stats import Comparison


@with_options("system_in_user")
def eval_command(
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "--tasks",
            help="lm-eval task: ted's (ted_mathvision, ted_mathvision_testmini, ted_visualpuzzles, ted_aime25, ted_aime24), reasoning-gym problems rg:NAME?split=test&n=200&seed=0, or any other lm-eval task, e.g. gsm8k (the library then goes in as its --system-instruction, without citations).",
        ),
    ],
    library: Annotated[Optional[str], typer.Option(help="Library: a local path or org/name@version (default: $TED_LIBRARY).")] = None,
    model: Annotated[str, typer.Option(help="lm-eval model type, as `lm_eval --model`.")] = "local-chat-completions",
    model_args: Annotated[str, typer.Option(help="As `lm_eval --model_args`, e.g. base_url=http://localhost:8000/v1/chat/completions,model=NAME.")] = "",
    gen_kwargs: Annotated[Optional[str], typer.Option(help="As `lm_eval --gen_kwargs`, e.g. max_gen_toks=2048.")] = None,
    batch_size: Annotated[str, typer.Option(help="As `lm_eval --batch_size`.")] = "1",
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N problems (both runs).")] = None,
    apply_chat_template: Annotated[bool, typer.Option(help="As `lm_eval --apply_chat_template` (on by default).")] = True,
    system_instruction: Annotated[Optional[str], typer.Option(help="As `lm_eval --system_instruction` (placed before the library's system text).")] = None,
    device: Annotated[Optional[str], typer.Option(help="As `lm_eval --device`, for local models.")] = None,
    data_files: Annotated[Optional[str], typer.Option(help="A local copy of the benchmark in its Hub schema (default: $TED_DATA_DIR/<task> or the Hub).")] = None,
    include_path: Annotated[Optional[str], typer.Option(help="As `lm_eval --include_path`: ted's eval_tasks/ folder (default: the installed one), or a folder of your own tasks.")] = None,
    record: Annotated[bool, typer.Option(help="Write the scores into the library's metrics (local libraries only).")] = False,
    chart: Annotated[Optional[Path], typer.Option(help="Also draw a bar chart (PNG) here.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the full report (per category too) as JSON here.")] = None,
    output_path: Annotated[Optional[Path], typer.Option(help="As `lm_eval --output_path`: lm-eval's results of each run, under baseline/ and with_library/.")] = None,
    log_samples: Annotated[bool, typer.Option(help="As `lm_eval --log_samples`: every prompt and reply too, into --output-path.")] = False,
    use_cache: Annotated[Optional[str], typer.Option(help="As `lm_eval --use_cache`: a SQLite file prefix where replies are kept, so a rerun asks the model only for new prompts.")] = None,
    metric: Annotated[Optional[str], typer.Option(help="For a task that is not ted's: the METRIC[,FILTER] compared (default: the first the task reports).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Replies per problem; k > 1 reports mean@k (sampled at --temperature).")] = 1,
    temperature: Annotated[Optional[float], typer.Option(min=0.0, callback=finite, help="Sampling temperature (default: greedy; 1.0 with --repeats > 1).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the statistics as one JSON object.")] = False,
    **values: Any,
) -> None:
    """Run a benchmark twice through lm-eval, baseline and with the library, and compare."""
    import json
    import logging

    from ted.errors import ConfigError, LibraryError
    from ted.evaluate import bar_chart, record as record_metrics, run_eval
    from ted.files import atomic_write

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give 1 or more (or leave it out to score every problem)")
    ref = library or os.environ.get("TED_LIBRARY")
    if not ref:
        raise LibraryError("no library given: pass --library PATH or org/name@version (or set TED_LIBRARY)")
    if record and not Path(ref).expanduser().exists():
        raise LibraryError(f"--record writes into a local library file; {ref} is not one (pull it first)")
    # Keep stderr for what matters: lm-eval's warnings and the datasets/Hub progress bars would
    # bury a one-line error. The table and the chart report the run.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import datasets
    import huggingface_hub

    from ted.models.calllog import calls_path

    # Every request on record, beside what the run was asked to write (nothing asked, nothing written).
    beside = out or chart or (output_path / "ted-eval.json" if output_path else None)
    calls = calls_path(beside) if beside else None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    report = run_eval(
        task,
        ref,
        model,
        model_args,
        include_path=include_path,
        data_files=data_files,
        limit=limit,
        gen_kwargs=gen_kwargs,
        batch_size=int(batch_size) if batch_size.isdigit() else batch_size,
        apply_chat_template=apply_chat_template,
        system_instruction=system_instruction,
        device=device,
        system_in_user=values["system_in_user"],
        repeats=repeats,
        temperature=temperature,
        calls=calls,
        metric=metric,
        output_path=str(output_path) if output_path else None,
        save_samples=log_samples,
        use_cache=use_cache,
    )
    if record:
        recorded = record_metrics(report, ref)
    if as_json:
        typer.echo(json.dumps(report.summary()))
        if chart:
            bar_chart(report, chart)
        if out:
            atomic_write(out, json.dumps(report.to_dict(), indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    from ted.shown import literal

    console = Console()
    table = Table(title=f"{literal(task)}: {literal(ref)} ({report.library_items} items, {report.library_tokens} tokens injected)")
    for column in ("", "baseline", "with library", "delta", "p (McNemar)", "problems"):
        table.add_column(column, justify="left" if not column else "right")
    label = "accuracy" if report.repeats == 1 else f"mean@{report.repeats}"
    table.add_row(label, *stats_cells(report.comparison()))
    for name in report.with_library.categories:
        table.add_row(f"  {literal(name)}", *stats_cells(report.comparison(name)))  # a dataset's category names: text, not markup
    if report.metric == "acc":  # ted's scorers count replies without an answer; an upstream metric does not
        table.add_row("no answer", str(report.baseline.no_answer), str(report.with_library.no_answer), "", "", "")
    if report.baseline.image_errors or report.with_library.image_errors:
        table.add_row("undecodable images", str(report.baseline.image_errors), str(report.with_library.image_errors), "", "", "")
    console.print(table)
    console.print("[95% bootstrap intervals over problems; a difference whose interval includes 0 is not significant]")
    if chart:
        console.print(f"chart: {bar_chart(report, chart)}", markup=False)
    if output_path:
        console.print(f"lm-eval results: {output_path}", markup=False)
    if out:
        try:
            atomic_write(out, json.dumps(report.to_dict(), indent=2) + "\n")  # whole or not at all, also on a full disk
        except OSError as err:
            raise ConfigError(f"cannot write the report {out}: {err.strerror or err}") from None
        console.print(f"report: {out}")
    if calls:
        console.print(f"every request: {calls} (ted log {calls})", markup=False, highlight=False, soft_wrap=True)
    if record:
        console.print(f"recorded in {recorded}")


def stats_cells(result: "Comparison") -> list[str]:
    """Table cells: each arm with its interval, the difference with its interval, p, problem count."""

    def arm(acc: float, ci: tuple[float, float]) -> str:
        return f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    delta = f"{result.delta:+.3f} [{result.delta_ci95[0]:+.3f}, {result.delta_ci95[1]:+.3f}]"
    if not result.significant:
        delta += " not significant"
    return [arm(result.baseline.acc, result.baseline.ci95), arm(result.with_library.acc, result.with_library.ci95), delta, f"{result.p_value:.3g}", str(result.n)]


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_command)
