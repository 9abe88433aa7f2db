"""`ted doctor` (what a bug report needs: versions, CPU, which backends load, caches) and `ted tasks-path`."""

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import typer

from ted.commands.options import JsonFlag, print_json

PACKAGES = ("ted-distill", "openai", "huggingface_hub", "datasets", "llama-cpp-python", "torch", "transformers", "lm-eval", "gradio")


def _version(package: str) -> str:
    import importlib.metadata  # not at the top: `ted` imports every command module at start-up

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tasks_path() -> None:
    """Print the folder of ted's lm-eval tasks, for `lm_eval --include_path "$(ted tasks-path)"`."""
    from ted.evaluate import TASKS_DIR

    typer.echo(str(TASKS_DIR))


def doctor(as_json: JsonFlag = False) -> None:
    """Print versions, CPU features, which backends load and where the caches are (paste it into bug reports)."""
    report = _report()
    if as_json:
        print_json(report)
        return
    for key, value in report.items():
        for label, text in (value.items() if isinstance(value, dict) else [(key, value)]):
            typer.echo(f"{label:<{18 if isinstance(value, dict) else 10}} {text}")


def _report() -> dict[str, Any]:
    """What `ted doctor` reports, by label (a dict for a group of lines)."""
    import platform

    from ted.evaluate import TASKS_DIR
    from ted.files import cache_dir
    from ted.models import local
    from ted.models.native import cpu_flags, portable_cmake_args, probe
    from ted.models.server import server_binary

    report: dict[str, Any] = {
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "platform": f"{platform.platform()} {platform.machine()}",
        "packages": {package: _version(package) for package in PACKAGES},
    }
    flags = cpu_flags()
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")
    report["cpu flags"] = " ".join(f for f in wanted if f in flags) or "unknown"
    if {"amx_tile", "amx_int8"} & flags:
        report["cpu note"] = "this CPU advertises AMX: llama.cpp must be built without it (VMs often do not grant AMX)"
    report["portable llama.cpp CMAKE_ARGS"] = portable_cmake_args()
    report["local models"] = {model.spec: f"{model.about}: {local.state(model)}" for model in local.MODELS.values()}
    if importlib.util.find_spec("llama_cpp") is None:
        report["llama.cpp"] = "not installed (pip install 'ted-distill[local]' with the CMAKE_ARGS above)"
    else:
        try:
            path = local.model_path("local:tiny")
        except Exception as err:  # noqa: BLE001 - doctor reports, it does not stop
            report["llama.cpp"] = f"local:tiny unavailable: {err}"
        else:
            ran, what = probe(path)
            report["llama.cpp"] = f"{'runs' if ran else 'BROKEN'}: {what} (local:tiny, child process)"
    report["llama-server"] = str(server_binary() or "not built (make demo builds it: scripts/llama-wheel --server)")
    report["backends"] = {
        name: "available" if importlib.util.find_spec(module) else "missing"
        for name, module in (("openai backend", "openai"), ("transformers backend", "transformers"), ("lm-eval", "lm_eval"), ("space", "gradio"))
    }
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    report["ted cache"] = f"{cache_dir()} (TED_CACHE)"
    report["hf cache"] = f"{hf_home} (HF_HOME); offline={os.environ.get('HF_HUB_OFFLINE', '0')}"
    report["lm-eval tasks"] = str(TASKS_DIR)
    return report


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command("tasks-path")(tasks_path)
