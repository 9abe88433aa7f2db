"""`ted doctor` (what a bug report needs: versions, CPU, which backends load, caches) and `ted tasks-path`."""

import importlib.util
import os
import sys
from pathlib import Path

import typer

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


def doctor() -> None:
    """Print versions, CPU features, which backends load and where the caches are (paste it into bug reports)."""
    import platform

    from ted.evaluate import TASKS_DIR
    from ted.files import cache_dir
    from ted.models.llama_cpp import bundled_model_path
    from ted.models.native import cpu_flags, portable_cmake_args, probe

    echo = typer.echo
    echo(f"python     {sys.version.split()[0]} ({sys.executable})")
    echo(f"platform   {platform.platform()} {platform.machine()}")
    for package in PACKAGES:
        echo(f"{package:<18} {_version(package)}")
    flags = cpu_flags()
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")
    echo("cpu flags  " + (" ".join(f for f in wanted if f in flags) or "unknown"))
    if {"amx_tile", "amx_int8"} & flags:
        echo("           this CPU advertises AMX: llama.cpp must be built without it (VMs often do not grant AMX)")
    echo(f"portable llama.cpp CMAKE_ARGS: {portable_cmake_args()}")
    if importlib.util.find_spec("llama_cpp") is None:
        echo("llama.cpp  not installed (pip install 'ted-distill[local]' with the CMAKE_ARGS above)")
    else:
        try:
            model = bundled_model_path()
        except Exception as err:  # noqa: BLE001 - doctor reports, it does not stop
            echo(f"llama.cpp  bundled model unavailable: {err}")
        else:
            ran, what = probe(model)
            echo(f"llama.cpp  {'runs' if ran else 'BROKEN'}: {what} (bundled model, child process)")
    for name, module in (("openai backend", "openai"), ("transformers backend", "transformers"), ("lm-eval", "lm_eval"), ("space", "gradio")):
        echo(f"{name:<20} {'available' if importlib.util.find_spec(module) else 'missing'}")
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    echo(f"ted cache  {cache_dir()} (TED_CACHE)")
    echo(f"hf cache   {hf_home} (HF_HOME); offline={os.environ.get('HF_HUB_OFFLINE', '0')}")
    echo(f"lm-eval tasks {TASKS_DIR}")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command("tasks-path")(tasks_path)
