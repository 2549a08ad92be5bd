"""The offline first run: a workflow whose models are missing can run on tiny random-weight stand-ins.

``run`` reads the models an editor workflow lists (``properties.models``, as ComfyUI's templates and the shipped
workflows carry them). When none of them is on disk yet, it offers the stand-ins that ``make-tiny-models`` writes
under the releases' file names: on a terminal it asks, with ``--tiny-models`` it accepts, otherwise it prints the
commands. ``serve`` logs the same offer at start-up when the model folders hold no model files at all.

Stand-ins never replace real files: they are written to a staging folder and moved into the model folders only
where no file of that name exists (anywhere in the model folders), and every stand-in written is recorded in
``<models dir>/tiny_stand_ins.txt``, so later runs can say their output is noise and a re-run may refresh them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from models.folders import DIFFUSERS_KEY, FOLDER_KEYS, ModelFolders, UnsafeModelPathError
from models.requirements import ModelRequirement, ModelRequirementsError, partition_models, required_models

logger = logging.getLogger(__name__)

MANIFEST_NAME = "tiny_stand_ins.txt"
MANIFEST_HEADER = (
    "# Tiny random-weight stand-ins written by make-tiny-models (outputs made with them are noise).\n"
    "# Delete these files before downloading the real ones.\n"
)
MAKE_COMMAND = "./start.sh make-tiny-models"
ACCEPT_FLAG = "--tiny-models"
YES = frozenset({"y", "yes"})


@dataclass(frozen=True)
class InstallResult:
    """What ``install_tiny_models`` did: stand-ins moved into place, and existing files it left alone."""

    written: list[Path]
    kept: list[Path]


@dataclass(frozen=True)
class ModelCheck:
    """The models an editor workflow lists, split by what the model folders hold.

    ``stand_ins`` are present models that are tiny stand-ins; ``offerable`` are missing ones ``make-tiny-models``
    can write.
    """

    missing: list[ModelRequirement]
    present: list[ModelRequirement]
    stand_ins: list[ModelRequirement]
    offerable: list[ModelRequirement]

    @property
    def can_offer(self) -> bool:
        """Stand-ins help only when nothing real is present: a real text encoder cannot feed a tiny transformer."""
        return bool(self.offerable) and len(self.stand_ins) == len(self.present)


def tiny_stand_in_names() -> frozenset[str]:
    """``folder/name`` of the model files and pipeline folders ``make-tiny-models`` writes (imports torch)."""
    from models.tiny import hunyuan, ltx, mochi, skyreels, svd, text_families
    from models.tiny.animatediff import TINY_ANIMATEDIFF_NAMES
    from models.tiny.cogvideox import TINY_COGVIDEOX_PIPELINES
    from models.tiny.controlnet import CONTROLNET_FOLDER, TINY_CONTROLNET_NAMES
    from models.tiny.depth import DEPTH_FOLDER, TINY_DEPTH_MODELS
    from models.tiny.family_pipelines import TINY_FAMILY_PIPELINES
    from models.tiny.interpolation import TINY_INTERPOLATION_NAMES
    from models.tiny.pipelines import TINY_WAN_PIPELINES
    from models.tiny.sd15_lora import LORA_FILE as SD15_LORA_FILE
    from models.tiny.sparsectrl import TINY_SPARSECTRL_NAMES
    from models.tiny.text import CLIP_VISION_FILE, UMT5_FP8_FILE, UMT5_FP16_FILE
    from models.tiny.upscale import TINY_UPSCALE_NAMES, UPSCALE_FOLDER
    from models.tiny.wan import DIFFUSION_MODELS_FOLDER, TINY_WAN_DIFFUSION_MODELS, TINY_WAN_VAES, VAE_FOLDER
    from models.tiny.wan_lora import LORAS_FOLDER, TINY_WAN_LORAS

    names = {f"{DIFFUSION_MODELS_FOLDER}/{stem}.safetensors" for stem in TINY_WAN_DIFFUSION_MODELS}
    names |= {f"{VAE_FOLDER}/{stem}.safetensors" for stem in TINY_WAN_VAES}
    names |= {f"{LORAS_FOLDER}/{stem}.safetensors" for stem in TINY_WAN_LORAS}
    names |= {f"{DIFFUSERS_KEY}/{name}" for name in TINY_WAN_PIPELINES}
    names |= {f"text_encoders/{UMT5_FP16_FILE}", f"text_encoders/{UMT5_FP8_FILE}", f"clip_vision/{CLIP_VISION_FILE}"}
    names |= {f"{DIFFUSERS_KEY}/{name}" for name in TINY_FAMILY_PIPELINES}
    names |= {f"{DIFFUSERS_KEY}/{name}" for name in TINY_COGVIDEOX_PIPELINES}
    names |= {ltx.CHECKPOINT_FILE, ltx.UPSAMPLER_FILE, mochi.TRANSFORMER_FILE, mochi.VAE_FILE}
    names |= {f"{hunyuan.DIFFUSION_MODELS_FOLDER}/{stem}.safetensors" for stem in hunyuan.TINY_HUNYUAN_DIFFUSION_MODELS}
    names.add(f"{hunyuan.VAE_FOLDER}/{hunyuan.TINY_HUNYUAN_VAE}.safetensors")
    names.add(f"{DIFFUSION_MODELS_FOLDER}/{skyreels.DF_FILE}")
    names |= set(TINY_ANIMATEDIFF_NAMES)
    names.add(SD15_LORA_FILE)
    names |= set(svd.TINY_SVD_NAMES)
    names |= set(TINY_INTERPOLATION_NAMES)
    names |= {f"{UPSCALE_FOLDER}/{name}" for name in TINY_UPSCALE_NAMES}
    names |= {f"{DEPTH_FOLDER}/{name}" for name in TINY_DEPTH_MODELS}
    names |= {f"{CONTROLNET_FOLDER}/{name}" for name in (*TINY_CONTROLNET_NAMES, *TINY_SPARSECTRL_NAMES)}
    names |= {f"{DIFFUSERS_KEY}/{name}" for name in skyreels.TINY_SKYREELS_PIPELINES}
    text_files = (
        text_families.T5_FP16_FILE,
        text_families.T5_FP8_FILE,
        text_families.LLAMA_FP16_FILE,
        text_families.LLAMA_FP8_FILE,
        text_families.CLIP_L_FILE,
    )
    names |= {f"text_encoders/{name}" for name in text_files}
    return frozenset(names)


def read_manifest(models_dir: Path) -> set[str]:
    """The ``folder/name`` entries of the stand-ins recorded under ``models_dir`` (empty when there is no record)."""
    try:
        text = (models_dir / MANIFEST_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def install_tiny_models(models_dir: Path, folders: ModelFolders | None = None, seed: int = 0) -> InstallResult:
    """Write the tiny stand-ins into ``models_dir`` without replacing any real model file.

    A stand-in goes in where no file (or tokenizer folder) of its name exists in ``folders`` (default: the folders
    under ``models_dir``), or where the one there is a recorded stand-in; others are kept and reported.
    """
    from models.tiny import write_tiny_models  # torch and diffusers load only when stand-ins are written

    folders = folders or ModelFolders(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    recorded = read_manifest(models_dir)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-staging-", dir=models_dir))
    written: list[Path] = []
    kept: list[Path] = []
    try:
        for path in write_tiny_models(staging, seed):
            relative = path.relative_to(staging).as_posix()
            existing = _existing(folders, models_dir, relative)
            if existing is not None and (relative not in recorded or existing != (models_dir / relative).resolve()):
                kept.append(existing)
                continue
            _move_into_place(path, models_dir / relative)
            written.append(models_dir / relative)
            recorded.add(relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        entries = sorted(entry for entry in recorded if (models_dir / entry).exists())
        (models_dir / MANIFEST_NAME).write_text(MANIFEST_HEADER + "".join(f"{e}\n" for e in entries), encoding="utf-8")
    return InstallResult(written, kept)


def check_models(workflow_ui: Mapping[str, Any], folders: ModelFolders, models_dir: Path) -> ModelCheck:
    """Split the models an editor workflow lists into missing and present ones; raises ``ModelRequirementsError``
    for a malformed model list."""
    missing, present = partition_models(required_models(workflow_ui), folders)
    recorded = read_manifest(models_dir)
    stand_ins = [r for r in present if _is_recorded(r, folders, models_dir, recorded)]
    known = tiny_stand_in_names() if missing else frozenset()
    offerable = [r for r in missing if f"{r.folder}/{r.name}" in known]
    return ModelCheck(missing, present, stand_ins, offerable)


def offer_tiny_models(
    workflow_ui: Mapping[str, Any] | None,
    folders: ModelFolders,
    models_dir: Path,
    *,
    accept: bool,
    stdin: TextIO,
    err: TextIO,
) -> None:
    """Before a headless run: report missing models and, when stand-ins can replace all of them, write them if
    ``accept`` (``--tiny-models``) or the user says yes on a terminal; else print how to get them.

    Only notes are printed here; a model still missing then fails validation, naming the loader and the file.
    """
    if workflow_ui is None:
        return  # API-format prompts list no models
    try:
        check = check_models(workflow_ui, folders, models_dir)
    except ModelRequirementsError as exc:
        print(f"warning: the workflow's model list is unreadable: {exc}", file=err)
        return
    if check.stand_ins:
        print(_stand_in_note(check.stand_ins, models_dir), file=err)
    if not check.missing:
        return
    print(_missing_text(check.missing, models_dir), file=err)
    if not check.can_offer:
        return
    if not accept:
        if not stdin.isatty():
            print(_how_to_accept(models_dir), file=err)
            return
        accept = _ask(models_dir, stdin, err)
        if not accept:
            return
    try:
        result = install_tiny_models(models_dir, folders)
    except OSError as exc:
        print(f"error: cannot write the tiny stand-ins to {models_dir}: {exc.strerror or exc}", file=err)
        return
    print(
        f"wrote {len(result.written)} tiny stand-ins under {models_dir} (listed in {MANIFEST_NAME}): "
        "the output will be noise",
        file=err,
    )
    for path in result.kept:
        print(f"  kept {path} (not a tiny stand-in)", file=err)
    still_missing, _ = partition_models(check.missing, folders)
    for requirement in still_missing:
        print(f"  no tiny stand-in for {requirement.folder}/{requirement.name}", file=err)


def serve_start_offer(folders: ModelFolders, models_dir: Path) -> str | None:
    """The start-up line ``serve`` logs when the model folders hold no model file; None when they hold some."""
    if any(folders.list_files(key) for key in FOLDER_KEYS):
        return None
    return (
        f"no model files under {models_dir} yet: the shipped workflows in workflows/ need them (each lists its files "
        f"and their download URLs). To try them offline now, `{MAKE_COMMAND} {models_dir}` writes tiny "
        "random-weight stand-ins under the same names (their output is noise; real files are never replaced)."
    )


def log_serve_offer(folders: ModelFolders, models_dir: Path) -> None:
    """Log ``serve_start_offer`` at start-up, if there is one."""
    message = serve_start_offer(folders, models_dir)
    if message is not None:
        logger.warning(message)


def _existing(folders: ModelFolders, models_dir: Path, relative: str) -> Path | None:
    """The real path of an existing file or folder named ``relative`` in the model folders, else None."""
    key, _, name = relative.partition("/")
    if key in FOLDER_KEYS and name:
        try:
            path = folders.resolve(key, name)
        except UnsafeModelPathError:
            path = None
        if path is not None and os.path.lexists(path):
            return path
    direct = models_dir / relative
    return direct.resolve() if os.path.lexists(direct) else None


def _move_into_place(source: Path, target: Path) -> None:
    """Replace ``target`` (a recorded stand-in, or nothing) with ``source``, on the same file system."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif os.path.lexists(target):
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _is_recorded(requirement: ModelRequirement, folders: ModelFolders, models_dir: Path, recorded: set[str]) -> bool:
    entry = f"{requirement.folder}/{requirement.name}"
    if entry not in recorded:
        return False
    try:
        return folders.resolve(requirement.folder, requirement.name) == (models_dir / entry).resolve()
    except UnsafeModelPathError:
        return False


def _missing_text(missing: Sequence[ModelRequirement], models_dir: Path) -> str:
    lines = [f"{len(missing)} model file(s) this workflow needs are not in the model folders ({models_dir}):"]
    for requirement in missing:
        source = f"  (from {requirement.repo_id})" if requirement.repo_id else ""
        lines.append(f"  {requirement.folder}/{requirement.name}{source}")
    return "\n".join(lines)


def _how_to_accept(models_dir: Path) -> str:
    return (
        f"to run it offline on tiny random-weight stand-ins (output will be noise), run again with {ACCEPT_FLAG}, "
        f"or write them first: {MAKE_COMMAND} {models_dir}"
    )


def _ask(models_dir: Path, stdin: TextIO, err: TextIO) -> bool:
    print(
        f"write tiny random-weight stand-ins to {models_dir} so shipped workflows run offline "
        "(output will be noise)? [y/N] ",
        end="",
        file=err,
        flush=True,
    )
    return stdin.readline().strip().lower() in YES


def _stand_in_note(stand_ins: Sequence[ModelRequirement], models_dir: Path) -> str:
    names = ", ".join(r.name for r in stand_ins)
    return (
        f"note: running on tiny random-weight stand-ins ({names}; listed in {models_dir / MANIFEST_NAME}): "
        "the output will be noise"
    )
