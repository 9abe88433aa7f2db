"""`ted space deploy`: turn the checkout's `space/` into a self-contained Hugging Face Space.

**What builds on the Hub.** The Spaces builder runs `pip install -r requirements.txt` with only
`requirements.txt` mounted (the repository is copied in afterwards), so a requirement can name
neither a file of the Space repo (a wheel uploaded next to it) nor `ted-distill`, which no package
index has. The Space therefore carries this exact ted *installed*: the wheel built from the
checkout, unpacked at the Space's root (`ted/` and its `.dist-info`, what pip puts in
site-packages), where `python app.py` imports it first; `requirements.txt` lists ted's own
dependencies, copied with their version ranges from that wheel's metadata, plus what the student's
backend needs. Gradio is not listed: the builder installs `sdk_version` from the front matter.

**llama.cpp without a compiler.** The `local` and `gguf:` students need llama-cpp-python, which
PyPI has only as a source package: the builder would compile llama.cpp (~10 min on 2 cores, see
scripts/llama-wheel) with its default GGML_NATIVE=ON, tuned to whichever CPU the builder has, the
"Illegal instruction" hazard on the machine that later runs the Space. Portable CMAKE_ARGS through
`--config-settings` would fix the flags but not the long build, so the requirements take the
prebuilt CPU wheel from llama-cpp-python's own index (LLAMA_CPP_WHEELS: its release workflow builds
Linux x86_64 with `CMAKE_ARGS=-DGGML_NATIVE=off`, so no -march=native and no AMX) and forbid a
source build (`--only-binary`): a version without a wheel fails the build at once, it never compiles.

**Preloaded models.** An `hf:` student named by a Hub id is listed under `preload_from_hub`, so the
builder downloads its weights into the image and the Space starts without fetching them.

**ZeroGPU.** `python_version` is 3.12 (ZeroGPU runs 3.10.13 or 3.12.12; ted needs 3.11+), torch is
never pinned (ZeroGPU brings its own; elsewhere an `hf:` student gets a plain `torch`), and the app
asks `spaces.GPU` for a duration scaled to the requested tokens (`tedspace.gpu_seconds`).

**Secrets.** Settings that are safe to publish (the student when it names no endpoint, the Hub
libraries) go into `space_settings.json`, read by the app as defaults for its variables. A student
behind an endpoint (`openai:MODEL@URL`, possibly private) and the names given with `--secret` are
set as Space *secrets*, never written into a file or a variable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

import yaml

from ted.errors import ConfigError, LibraryError, TedError

ROOT = Path(__file__).resolve().parent.parent
SPACE_DIR = ROOT / "space"
APP_FILES = ("app.py", "tedspace.py")
SETTINGS_FILE = "space_settings.json"
SHIPPED_DIR = "library_cards"  # tedspace offers every library.json under it
PYTHON_VERSION = "3.12"
LLAMA_CPP = "llama-cpp-python"
LLAMA_CPP_WHEELS = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
"""llama-cpp-python's own index of prebuilt, portable CPU wheels (see the module docstring)."""
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "ted")
"""What the ted wheel is built from, copied out of the checkout so the build writes nothing into it."""
BACKEND_PACKAGES = {
    "local": ("llama-cpp-python",),  # and the chunk packages of the one local model named (ted.models.local)
    "gguf": ("llama-cpp-python",),
    "hf": ("transformers", "accelerate", "torch"),
    "openai": (),
}
"""Distributions of ted's `local` extra that each student backend needs in a Space."""
UNPINNED = ("torch",)
"""Never pinned in a Space: ZeroGPU brings its own torch, and an exact pin fights it."""
SHORT_DESCRIPTION_CHARS = 60


class DeployError(TedError):
    """The Space could not be built or uploaded."""


@dataclass(frozen=True)
class SpacePlan:
    """What `ted space deploy` writes and sets: the files by path, and the secrets by name."""

    repo_id: str
    files: dict[str, bytes]
    secrets: dict[str, str]
    hardware: str


def plan_space(
    repo_id: str,
    *,
    student: str = "local",
    libraries: list[str] | tuple[str, ...] = (),
    hardware: str = "cpu-basic",
    secret_names: list[str] | tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> SpacePlan:
    """Build every file of the Space in memory (nothing is uploaded)."""
    from ted.hub import check_repo_id, load_library, parse_ref
    from ted.models import parse_spec

    environ = dict(os.environ if env is None else env)
    check_repo_id(repo_id)
    from huggingface_hub import SpaceHardware

    known = [h.value for h in SpaceHardware]
    if hardware not in known:
        raise ConfigError(f"unknown hardware {hardware!r}; choose one of {', '.join(known)}")
    backend, model, url = parse_spec(student)
    missing = [name for name in secret_names if not environ.get(name)]
    if missing:
        raise ConfigError(f"--secret {missing[0]}: ${missing[0]} is not set here, so there is no value to store in the Space")
    if not all(path.is_file() for path in (SPACE_DIR / name for name in (*APP_FILES, "README.md"))):
        raise DeployError(f"ted space deploy needs a checkout of the ted repository ({SPACE_DIR} is missing or incomplete)")

    files: dict[str, bytes] = {name: (SPACE_DIR / name).read_bytes() for name in APP_FILES}
    hub_refs, shipped = [], []
    for ref in libraries:
        parsed = parse_ref(ref)
        library = load_library(ref)  # fail here, not in the Space: the reference must resolve and validate
        if parsed.kind == "hub":
            hub_refs.append(str(parsed))
            continue
        folder = _free_name(re.sub(r"[^A-Za-z0-9._-]+", "-", library.name).strip("-.") or "library", shipped)
        shipped.append(folder)
        # Public files: the Space keeps its endpoint a secret, and a library's `config` names the run's
        # endpoints, data and prompt paths on the machine it ran on; the Space needs none of them.
        public = library.model_copy(update={"config": {}})
        files[f"{SHIPPED_DIR}/{folder}/library.json"] = public.to_json().encode("utf-8")
    wheel_files, metadata = _built_wheel()
    files.update(wheel_files)
    files["requirements.txt"] = requirements(metadata, backend, hardware, student).encode("utf-8")
    settings = {"TED_SPACE_LIBRARIES": ",".join(hub_refs)} if hub_refs else {}
    secrets = {name: environ[name] for name in secret_names}
    if url is None:
        settings["TED_STUDENT"] = student
    else:
        secrets["TED_STUDENT"] = student  # the endpoint may be private: a secret, never a file
    files[SETTINGS_FILE] = (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode("utf-8")
    files["README.md"] = readme(
        repo_id, model=model, backend=backend, hub_refs=hub_refs, hardware=hardware, secrets=sorted(secrets)
    ).encode("utf-8")
    return SpacePlan(repo_id, dict(sorted(files.items())), secrets, hardware)


def requirements(metadata: str, backend: str, hardware: str, student: str = "local") -> str:
    """ted's dependencies (from the wheel's METADATA) and the student backend's, one per line
    (for a `local…` student, only the parts of that one model)."""
    from packaging.requirements import Requirement

    from ted.models.local import get

    wanted = set(BACKEND_PACKAGES[backend]) - ({"torch"} if hardware.startswith("zero-") else set())
    if backend == "local":
        wanted |= {_canonical(part.dist) for part in get(student).parts}
    lines = []
    for raw in Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        req = Requirement(raw)
        marker = str(req.marker or "")
        if marker and not (re.fullmatch(r'extra == "local"', marker) and _canonical(req.name) in wanted):
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        spec = "" if _canonical(req.name) in UNPINNED else str(req.specifier)
        lines.append(f"{req.name}{extras}{spec}")
    head = (
        "# ted's dependencies, with the version ranges of its wheel; ted itself is unpacked next to app.py\n"
        "# (no index has it). Gradio comes from sdk_version in README.md; ZeroGPU brings torch and spaces.\n"
    )
    if any(_canonical(line).startswith(LLAMA_CPP) for line in lines):
        head += (
            "# llama.cpp: the prebuilt portable CPU wheel, never a compile on the builder (see ted/deploy.py).\n"
            f"--extra-index-url {LLAMA_CPP_WHEELS}\n--only-binary={LLAMA_CPP}\n"
        )
    return head + "".join(line + "\n" for line in sorted(lines, key=str.lower))


def readme(repo_id: str, *, model: str, backend: str, hub_refs: list[str], hardware: str, secrets: list[str]) -> str:
    """space/README.md with its front matter completed for this Space and a section on this deployment."""
    from ted.cards import split_card
    from ted.hub import check_repo_id

    front, body = split_card((SPACE_DIR / "README.md").read_text(encoding="utf-8"))
    models = [model] if backend in ("hf", "openai") and _is_repo_id(check_repo_id, model) else []
    datasets = sorted({ref.split("@")[0] for ref in hub_refs})
    description = f"{model.split('/')[-1]} with and without a TED library"
    front.update(
        title=f"TED · {repo_id.split('/')[1]}"[:60],
        python_version=PYTHON_VERSION,
        short_description=description if len(description) <= SHORT_DESCRIPTION_CHARS else front["short_description"],
        suggested_hardware=hardware,
        models=models,
        datasets=datasets,
    )
    if backend == "hf" and models:
        front["preload_from_hub"] = models  # the weights go into the image at build time
    lines = [
        "## This deployment",
        "",
        f"Made by `ted space deploy`. Student: `{model}` ({backend} backend)"
        + ("; its spec, with the endpoint, is the `TED_STUDENT` secret." if "TED_STUDENT" in secrets else "."),
        "Libraries offered: " + (", ".join(f"`{ref}`" for ref in hub_refs) or "the ones under `library_cards/`, if any") + ".",
        f"Settings that are safe to publish are in `{SETTINGS_FILE}`; a Space variable of the same name overrides them.",
        "Secrets set by the deploy: " + (", ".join(f"`{name}`" for name in secrets) or "none") + ".",
        "",
    ]
    front_text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front_text}---\n{body.rstrip()}\n\n" + "\n".join(lines)


def write_folder(plan: SpacePlan, out: Path) -> list[str]:
    """The dry run: the Space's files in `out` (which must not hold anything yet)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; pick a new --out")
    from ted.files import atomic_write

    for path, data in plan.files.items():
        atomic_write(out / path, data)
    return list(plan.files)


def upload(plan: SpacePlan, *, private: bool = False, token: str | None = None, endpoint: str | None = None) -> str:
    """Create the Space if needed and upload the plan as one commit (stale files removed); set its secrets."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, get_token

    from ted.hub import HubError, _Hub

    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (deploying needs a token with write access)")
    hub = _Hub(token=token, endpoint=endpoint)
    repo_id = plan.repo_id
    with hub.errors(repo_id, writing=True):
        hub.api.create_repo(repo_id, repo_type="space", space_sdk="gradio", space_hardware=plan.hardware, private=private, exist_ok=True)
        present = hub.api.list_repo_files(repo_id, repo_type="space")
        operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=data) for p, data in plan.files.items()]
        operations += [CommitOperationDelete(path_in_repo=p) for p in present if p not in plan.files and p != ".gitattributes"]
        commit = hub.api.create_commit(
            repo_id, operations, commit_message="Deploy with ted space deploy", repo_type="space"
        )
        for name, value in plan.secrets.items():
            hub.api.add_space_secret(repo_id, name, value, description="set by ted space deploy")
    return str(commit.oid)


# --------------------------------------------------------------------------- helpers
def _built_wheel() -> tuple[dict[str, bytes], str]:
    """The files of the wheel built from this checkout (what pip would install) and its METADATA.

    Built from a copy of WHEEL_SOURCES: setuptools writes `build/` and `*.egg-info` beside the
    sources it builds, and a dry run writes nothing outside its `--out`."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for name in WHEEL_SOURCES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                source.mkdir(exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", tmp, str(source)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wheels = list(Path(tmp).glob("ted_distill-*.whl"))
        if built.returncode != 0 or len(wheels) != 1:
            last = (built.stderr.strip().splitlines() or ["no wheel was written"])[-1]
            raise DeployError(f"building the ted wheel from {ROOT} failed ({last}); `pip install setuptools wheel` and try again")
        with zipfile.ZipFile(wheels[0]) as wheel:
            files = {name: wheel.read(name) for name in wheel.namelist() if not name.endswith("/")}
    (metadata,) = [data.decode("utf-8") for name, data in files.items() if name.endswith(".dist-info/METADATA")]
    return files, metadata


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _free_name(name: str, taken: list[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _is_repo_id(check: Any, text: str) -> bool:
    try:
        check(text)
    except LibraryError:
        return False
    return True
