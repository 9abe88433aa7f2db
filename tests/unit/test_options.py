"""One table of run options (`ted.distill.options`): `RunConfig` and `ted distill`'s flags agree on
every default and bound, and `--config` fills Click's defaults (flag > file > default)."""

from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.main import get_command

from ted.cli import app
from ted.distill.config import RunConfig, option_field
from ted.distill.options import OPTIONS, RUN
from ted.errors import ConfigError

REQUIRED = ["--data", "d.jsonl", "--student", "local", "--teacher", "local", "--out", "o.json"]


def distill_command():
    return get_command(app).get_command(typer.Context(get_command(app)), "distill")


def parse(*args: str) -> dict:
    """`ted distill ARGS` parsed as the CLI parses it (callbacks, defaults, checks), without running it."""
    return distill_command().make_context("distill", [*REQUIRED, *args]).params


def test_every_run_option_is_a_flag_with_runconfigs_default():
    params = {p.name: p for p in distill_command().params}
    assert set(RunConfig.model_fields) - {"fields", "price"} == {o.name for o in RUN}  # the two parsed from --field, --price
    for option in RUN:
        field = RunConfig.model_fields[option.name]
        assert params[option.name].required == field.is_required(), option.name
        assert params[option.name].default == (None if field.is_required() else field.default), option.name
    assert parse()["epochs"] == RunConfig(data="d", student="s", teacher="t", out="o").epochs == 3


@pytest.mark.parametrize("option", [o for o in RUN if o.ge is not None or o.le is not None], ids=lambda o: o.name)
def test_the_cli_and_runconfig_refuse_the_same_out_of_range_values(option):
    """Just past a bound is refused by both, with the flag named; the bound itself is accepted by both."""
    kind = int if option.type is int or isinstance(option.default, int) else float
    step = 1 if kind is int else 0.5
    outside = [b for b in ((option.ge - step) if option.ge is not None else None, (option.le + step) if option.le is not None else None) if b is not None]
    base = {"data": "d", "student": "s", "teacher": "t", "out": "o"}
    for value in outside:
        with pytest.raises(typer.BadParameter):
            parse(option.flag, str(kind(value)))
        with pytest.raises(ValidationError):
            RunConfig(**base, **{option.name: kind(value)})
    for bound in (b for b in (option.ge, option.le) if b is not None):
        assert parse(option.flag, str(kind(bound)))[option.name] == kind(bound)
        assert getattr(RunConfig(**base, **{option.name: kind(bound)}), option.name) == kind(bound)


def test_a_choice_outside_the_table_is_refused():
    with pytest.raises(typer.BadParameter, match="'magic' is not one of 'teacher', 'truncate', 'random', 'none'"):
        parse("--compression", "magic")


def test_config_file_beats_defaults_and_flags_beat_the_file(tmp_path: Path):
    config = tmp_path / "run.toml"
    config.write_text('[distill]\nepochs = 2\nbatch-size = 1\ncompression = "none"\nfield = {question = "problem"}\n')
    params = parse("--config", str(config), "--epochs", "5")
    assert params["epochs"] == 5  # the flag
    assert params["batch_size"] == 1 and params["compression"] == "none"  # the file (a dashed key is the flag's name)
    assert params["field"] == ["question=problem"]  # a TOML table as the repeated flag's items
    assert params["rollouts"] == 5  # the default


def test_a_wrong_value_in_the_file_is_refused_like_one_on_the_command_line(tmp_path: Path):
    (tmp_path / "run.toml").write_text("rollouts = 0\n")
    with pytest.raises(typer.BadParameter) as from_file:
        parse("--config", str(tmp_path / "run.toml"))
    with pytest.raises(typer.BadParameter) as from_flag:
        parse("--rollouts", "0")
    assert from_file.value.format_message() == from_flag.value.format_message()


@pytest.mark.parametrize("text, needle", [("bogus = 1\n", "unknown option 'bogus'"), ("epochs = [\n", "invalid TOML"), ("config = 'x.toml'\n", "unknown option 'config'")])
def test_a_bad_config_file_is_a_config_error(tmp_path: Path, text: str, needle: str):
    (tmp_path / "run.toml").write_text(text)
    with pytest.raises(ConfigError, match=needle):
        parse("--config", str(tmp_path / "run.toml"))


REPRODUCE_REQUIRED = ["--benchmark", "aime", "--student", "s", "--teacher", "t", "--out", "o"]


def reproduce_command():
    return get_command(app).get_command(typer.Context(get_command(app)), "reproduce")


def parse_reproduce(*args: str) -> dict:
    return reproduce_command().make_context("reproduce", [*REPRODUCE_REQUIRED, *args]).params


def test_reproduce_flags_and_config_come_from_one_table() -> None:
    """ReproduceConfig once re-typed the shared options and drifted (no upper bound on epochs, a literal
    500), and its own were typed twice, as a flag and as a field (no bound on --repeats or --eval-limit
    on the command line): every field is a flag with the table's default and bounds, the shared ones
    are RunConfig's, and the command line's defaults, parsed, are the configuration's."""
    from ted.commands.reproduce import _config
    from ted.reproduce.options import DISTILL_OPTIONS, PARSED, REPRODUCE
    from ted.reproduce.plan import ReproduceConfig

    params = {p.name: p for p in reproduce_command().params}
    assert set(ReproduceConfig.model_fields) == {o.name for o in REPRODUCE}
    assert set(params) - set(ReproduceConfig.model_fields) == {"resume", "html", "dry_run", "config"}  # how to run, not what
    for option in REPRODUCE:
        param = params[option.name]
        assert (param.required, param.default) == (option.required, None if option.required else option.default), option.name
        if option.name not in PARSED:
            (annotation, table), field = option_field(option), ReproduceConfig.model_fields[option.name]
            assert (field.annotation, field.default, field.metadata) == (annotation, table.default, table.metadata), option.name
    for option in DISTILL_OPTIONS:  # passed on to every arm's RunConfig: its type, default and bounds
        ours, run = ReproduceConfig.model_fields[option.name], RunConfig.model_fields[option.name]
        assert (ours.annotation, ours.default, ours.metadata) == (run.annotation, run.default, run.metadata), option.name
    assert _config(parse_reproduce()) == ReproduceConfig(benchmark="aime", student="s", teacher="t", out="o")


def _bounded_reproduce():
    from ted.reproduce.options import REPRODUCE

    return [o for o in REPRODUCE if o.ge is not None or o.le is not None]


@pytest.mark.parametrize("option", _bounded_reproduce(), ids=lambda o: o.name)
def test_reproduce_and_its_config_refuse_the_same_out_of_range_values(option) -> None:
    from ted.reproduce.plan import ReproduceConfig

    kind = int if option.type is int or isinstance(option.default, int) else float
    base = {"benchmark": "aime", "student": "s", "teacher": "t", "out": "o"}
    for value in [b for b in ((option.ge - 1) if option.ge is not None else None, (option.le + 1) if option.le is not None else None) if b is not None]:
        with pytest.raises(typer.BadParameter):
            parse_reproduce(option.flag, str(kind(value)))
        with pytest.raises(ValidationError):
            ReproduceConfig(**base, **{option.name: kind(value)})


def test_the_printed_distill_command_reruns_the_arms_run(tmp_path: Path) -> None:
    """The report's `ted distill` line for an arm, parsed as `ted distill` parses it, is that arm's RunConfig."""
    from ted.commands.options import parse_prices
    from ted.reproduce.plan import ReproduceConfig, RunDir, arms
    from ted.reproduce.units import distill_args, distill_run

    config = ReproduceConfig(benchmark="aime", student="s", teacher="t", out=str(tmp_path), epochs=2, system_in_user=True,
                             price={"teacher": (0.5, 2.0)}, teacher_api_key_env="TEACHER_KEY")  # fmt: skip
    run_dir = RunDir(tmp_path)
    for arm in arms(config):
        argv = distill_args(config, run_dir, arm)
        params = distill_command().make_context("distill", argv[1:]).params
        run = distill_run(config, run_dir, arm)
        assert RunConfig(**{o.name: params[o.name] for o in RUN}, price=parse_prices(params["price"])) == run, arm.name
        assert (params["api_key_env"], params["teacher_api_key_env"]) == ("OPENAI_API_KEY", "TEACHER_KEY")
