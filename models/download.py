"""Download model repos, or some of their files, from the Hugging Face Hub into the model folders.

In the ``diffusers`` folder a repo keeps its layout under ``<diffusers>/<repo name>/`` (a pipeline folder), and in the
``tokenizers`` folder under ``<tokenizers>/<repo name>/`` (a folder ``AutoTokenizer`` reads). With another folder key
the chosen files land directly in that folder under their base names, as ComfyUI's loaders expect
(``vae/wan_2.1_vae.safetensors``, not ``vae/split_files/vae/...``). Unless patterns are given, only the formats
Reelgraph loads are fetched (in ``tokenizers``: only tokenizer files, never weights); pickled weights are never fetched
when the repo has safetensors.

huggingface_hub does the transfers: its progress bars, its retries, and its resume of a dropped connection with a
``Range`` request. (Version 2.4 discards a partial file when a download fails, so a new run starts that file over.)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx2
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects

from graph.safe_paths import UnsafePathError, check_relative_part, resolve_inside
from models.folders import (
    DEPTH_KEY,
    DIFFUSERS_KEY,
    DIFFUSERS_MARKER,
    TOKENIZERS_KEY,
    ModelFolders,
    UnknownModelFolderError,
)
from models.requirements import HubFile

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = DIFFUSERS_KEY
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES | {".gguf"}
CONFIG_SUFFIXES = frozenset({".json", ".txt", ".model"})  # configs, tokenizers (vocab, merges, sentencepiece)
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
# Tokenizer files (configs, tokenizer.json, sentencepiece models such as spiece.model, vocabularies and merges): what
# the ``tokenizers`` folder fetches by default.
TOKENIZER_PATTERNS = ("*.json", "*.model", "*.txt")
# folders where a repo keeps its layout under its name (pipeline, depth-estimation and tokenizer folders)
KEEP_LAYOUT_KEYS = frozenset({DIFFUSERS_KEY, DEPTH_KEY, TOKENIZERS_KEY})
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
_STAGING_PREFIX = ".download-"

FileCallback = Callable[[int, int, "PlannedFile"], None]


class DownloadError(Exception):
    """A download that cannot be done or did not finish; the message is one line saying what and why."""


@dataclass(frozen=True)
class HubSettings:
    """Where the Hub is and whether it may be reached, read from the environment at call time (not import time)."""

    endpoint: str = DEFAULT_ENDPOINT
    offline: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HubSettings:
        """``HF_ENDPOINT`` (a mirror or a local hub) and ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``."""
        env = os.environ if environ is None else environ
        endpoint = (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        offline = any(env.get(name, "").strip().upper() in _TRUE_VALUES for name in OFFLINE_VARIABLES)
        return cls(endpoint, offline)


@dataclass(frozen=True)
class PlannedFile:
    """One repo file to fetch: its path in the repo, where it goes, and its size when the Hub says."""

    repo_path: str
    target: Path
    size: int | None


@dataclass(frozen=True)
class DownloadPlan:
    """What a download will fetch from one repo revision, decided before any byte is written.

    ``flat`` means the files go straight into ``destination`` under their base names; otherwise they keep their repo
    paths below it.
    """

    repo_id: str
    revision: str
    commit: str
    folder: str
    destination: Path
    flat: bool
    files: tuple[PlannedFile, ...]
    skipped_pickles: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(item.size or 0 for item in self.files)


@dataclass(frozen=True)
class DownloadResult:
    """The files a download left in place, in plan order; ``already_present`` were there before and kept."""

    plan: DownloadPlan
    paths: tuple[Path, ...]
    already_present: tuple[Path, ...]


def select_files(
    names: Iterable[str], include: Sequence[str] = (), weights_only: bool = False
) -> tuple[list[str], list[str]]:
    """The repo files to fetch, and the pickles left out, both sorted.

    Args:
        names: every file path in the repo.
        include: glob patterns (``*`` also crosses ``/``, as in huggingface_hub); when empty, the formats Reelgraph
            loads are chosen: weights, plus configs and tokenizer files unless ``weights_only``.
        weights_only: choose only weight files by default (for folders of single-file models).

    Pickled weights (``.bin``, ``.pt``, ...) are always left out when the repo has safetensors, patterns or not.
    """
    names = sorted(names)
    if include:
        chosen = list(filter_repo_objects(names, allow_patterns=list(include)))
    else:
        wanted = WEIGHT_SUFFIXES if weights_only else WEIGHT_SUFFIXES | CONFIG_SUFFIXES
        chosen = [name for name in names if _suffix(name) in wanted]
    has_safetensors = any(_suffix(name) in SAFETENSORS_SUFFIXES for name in names)
    skipped = [name for name in chosen if has_safetensors and _suffix(name) in PICKLE_SUFFIXES]
    left_out = set(skipped)
    return [name for name in chosen if name not in left_out], skipped


def plan_download(
    repo_id: str,
    folders: ModelFolders,
    folder: str = DEFAULT_FOLDER,
    include: Sequence[str] = (),
    revision: str | None = None,
    settings: HubSettings | None = None,
) -> DownloadPlan:
    """Ask the Hub for the repo's files at ``revision`` and decide what goes where; writes nothing.

    Raises ``DownloadError`` when offline, when the Hub cannot be reached or has no such repo or revision, when
    nothing (by default: no weights; in ``tokenizers``: no tokenizer files) is left to fetch, when the default
    ``diffusers`` folder is asked for a repo that is no pipeline, when a file name would leave the folder, or when a
    flat target already exists with another size.
    """
    settings = settings or HubSettings.from_env()
    revision = revision or DEFAULT_REVISION
    require_online(settings)
    try:
        root = folders.folder(folder)
    except UnknownModelFolderError as exc:
        raise DownloadError(str(exc)) from None
    flat = folder not in KEEP_LAYOUT_KEYS
    commit, files = _repo_files(repo_id, revision, settings)
    if folder == TOKENIZERS_KEY and not include:
        selected, skipped = select_files(files, TOKENIZER_PATTERNS)
        if not selected:
            raise DownloadError(_no_tokenizer_message(repo_id, revision, list(files)))
    else:
        selected, skipped = select_files(files, include, weights_only=flat)
        if not selected or (not include and not any(_suffix(name) in WEIGHT_SUFFIXES for name in selected)):
            raise DownloadError(_nothing_message(repo_id, revision, list(files), include, skipped))
    if folder == DIFFUSERS_KEY and not include and DIFFUSERS_MARKER not in files:
        raise DownloadError(
            f"{repo_id} is not a diffusers pipeline (it has no {DIFFUSERS_MARKER}); choose its files with --include "
            "and their model folder with --folder (e.g. --folder checkpoints --include '*.safetensors')"
        )
    destination = root if flat else root / _repo_name(repo_id)
    planned = _plan_targets(repo_id, selected, files, destination, flat)
    return DownloadPlan(repo_id, revision, commit, folder, destination, flat, tuple(planned), tuple(skipped))


def plan_model_file(
    hub_file: HubFile,
    folders: ModelFolders,
    folder: str,
    name: str,
    settings: HubSettings | None = None,
) -> DownloadPlan:
    """Plan fetching the model a workflow lists as ``name`` in folder ``folder`` from ``hub_file``.

    In most folders that is the one file, saved as ``name`` (which may hold a subfolder) wherever it sits in the
    repo. In ``diffusers`` and ``tokenizers``, where a model is a folder named after its repo, it is the repo (as
    ``plan_download`` chooses its files) when ``name`` is the repo's name. Raises ``DownloadError`` like
    ``plan_download``, and when the file is not in the repo or ``name`` would leave the folder.
    """
    settings = settings or HubSettings.from_env()
    if folder in KEEP_LAYOUT_KEYS:
        if name != _repo_name(hub_file.repo_id):
            raise DownloadError(
                f"{folder}/{name}: a {folder} model is a folder named after its repo, and {hub_file.repo_id} "
                f"would be saved as {folder}/{_repo_name(hub_file.repo_id)}; download it by hand"
            )
        return plan_download(hub_file.repo_id, folders, folder, revision=hub_file.revision, settings=settings)
    require_online(settings)
    try:
        root = folders.folder(folder)
        check_relative_part(name, what="model name")
        target = resolve_inside(root, name, what="model name")
    except (UnknownModelFolderError, UnsafePathError) as exc:
        raise DownloadError(f"refusing to download {folder}/{name}: {exc}") from None
    commit, files = _repo_files(hub_file.repo_id, hub_file.revision, settings)
    if hub_file.path not in files:
        raise DownloadError(f"{hub_file.repo_id}@{hub_file.revision} has no file {hub_file.path!r}")
    item = PlannedFile(hub_file.path, target, files[hub_file.path])
    if target.exists() and not _already_there(item):
        raise DownloadError(
            f"{target} already exists and differs from {hub_file.path!r} of {hub_file.repo_id} "
            f"({_size_of(target)} bytes, the repo's has {item.size}); move it away to download"
        )
    return DownloadPlan(hub_file.repo_id, hub_file.revision, commit, folder, root, True, (item,), ())


def download(
    plan: DownloadPlan, settings: HubSettings | None = None, on_file: FileCallback | None = None
) -> DownloadResult:
    """Fetch the plan's files with huggingface_hub (its tqdm bars show each file's bytes).

    ``on_file(index, count, file)`` is called before each file is fetched. Flat targets that already exist with the
    repo's size are kept. Raises ``DownloadError`` naming the file on the first failure; files already fetched stay.
    """
    settings = settings or HubSettings.from_env()
    require_online(settings)
    with _local_errors(plan.destination):
        plan.destination.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    present: list[Path] = []
    staging: Path | None = None
    try:
        for index, item in enumerate(plan.files):
            if plan.flat and _already_there(item):
                present.append(item.target)
                paths.append(item.target)
                continue
            if on_file is not None:
                on_file(index, len(plan.files), item)
            if plan.flat:
                with _local_errors(plan.destination):
                    staging = staging or Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=plan.destination))
                staged = _fetch(plan, item, staging, settings)
                with _local_errors(plan.destination):
                    item.target.parent.mkdir(parents=True, exist_ok=True)  # a listed name may hold a subfolder
                    os.replace(staged, item.target)
            else:
                before = _stat_key(item.target)
                _fetch(plan, item, plan.destination, settings)
                if before is not None and before == _stat_key(item.target):
                    present.append(item.target)
            paths.append(item.target)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return DownloadResult(plan, tuple(paths), tuple(present))


def download_repo(
    repo_id: str,
    folders: ModelFolders,
    folder: str = DEFAULT_FOLDER,
    include: Sequence[str] = (),
    revision: str | None = None,
    settings: HubSettings | None = None,
    on_file: FileCallback | None = None,
) -> DownloadResult:
    """``plan_download`` then ``download``: the whole job, raising ``DownloadError`` with one clear line."""
    settings = settings or HubSettings.from_env()
    plan = plan_download(repo_id, folders, folder, include, revision, settings)
    return download(plan, settings, on_file)


def _repo_files(repo_id: str, revision: str, settings: HubSettings) -> tuple[str, dict[str, int | None]]:
    """The commit ``revision`` points at, and every file of the repo there with its size."""
    api = HfApi(endpoint=settings.endpoint)
    with _hub_errors(repo_id, revision, settings, f"listing the files of {repo_id}"):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    if not info.sha:
        raise DownloadError(f"{settings.endpoint} did not say which commit {repo_id}@{revision} is; is it a Hub?")
    return info.sha, {sibling.rfilename: sibling.size for sibling in info.siblings or ()}


def _plan_targets(
    repo_id: str, names: list[str], sizes: Mapping[str, int | None], destination: Path, flat: bool
) -> list[PlannedFile]:
    """Where each chosen file goes, refusing names that would leave the folder, collide, or overwrite another file."""
    planned: list[PlannedFile] = []
    claimed: dict[Path, str] = {}
    root = destination.resolve()
    for name in names:
        relative = PurePosixPath(name).name if flat else name
        try:
            check_relative_part(name, what="repo file name")
            target = resolve_inside(destination, relative, what="repo file name")
        except UnsafePathError as exc:
            raise DownloadError(f"refusing to download {repo_id}: {exc}") from None
        if target == root:
            raise DownloadError(f"refusing to download {repo_id}: repo file name {name!r} is not a file name")
        if target in claimed:
            raise DownloadError(
                f"{claimed[target]!r} and {name!r} of {repo_id} would both be saved as {target}; "
                "choose one of them with --include"
            )
        claimed[target] = name
        item = PlannedFile(name, target, sizes.get(name))
        if flat and target.exists() and not _already_there(item):
            raise DownloadError(
                f"{target} already exists and differs from {name!r} of {repo_id} "
                f"({_size_of(target)} bytes, the repo's has {item.size}); move it away to download"
            )
        planned.append(item)
    return planned


def _fetch(plan: DownloadPlan, item: PlannedFile, local_dir: Path, settings: HubSettings) -> Path:
    """One file into ``local_dir`` at its repo path, pinned to the plan's commit; the path it was written to."""
    with _hub_errors(plan.repo_id, plan.revision, settings, f"downloading {item.repo_path!r} of {plan.repo_id}"):
        path = hf_hub_download(
            plan.repo_id,
            item.repo_path,
            revision=plan.commit,
            local_dir=local_dir,
            endpoint=settings.endpoint,
        )
    return Path(path)


@contextmanager
def _hub_errors(repo_id: str, revision: str, settings: HubSettings, doing: str) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into one-line ``DownloadError``s."""
    try:
        yield
    except OfflineModeIsEnabled:
        raise DownloadError(_offline_message(settings)) from None
    except GatedRepoError:
        raise DownloadError(
            f"{repo_id} is gated: accept its conditions at {settings.endpoint}/{repo_id} and log in "
            "(`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError as exc:
        raise DownloadError(
            f"repository {repo_id!r} was not found on {settings.endpoint} ({_status(exc)}); check the id, "
            "or log in (`hf auth login` or HF_TOKEN) if it is private"
        ) from None
    except RevisionNotFoundError:
        raise DownloadError(f"revision {revision!r} was not found in {repo_id}") from None
    except RemoteEntryNotFoundError:
        raise DownloadError(f"{doing}: the file is not in the repo at {revision!r}") from None
    except HfHubHTTPError as exc:
        detail = _first_line(exc.server_message or "")
        raise DownloadError(
            f"{doing} failed: the Hub answered {_status(exc)}" + (f" ({detail})" if detail else "")
        ) from None
    except (httpx2.TransportError, LocalEntryNotFoundError) as exc:
        raise DownloadError(_unreachable_message(settings, doing, exc)) from None
    except HFValidationError as exc:
        raise DownloadError(f"{repo_id!r} is not a valid repo id or revision: {_first_line(str(exc))}") from None
    except OSError as exc:
        raise DownloadError(f"{doing} failed: {_first_line(str(exc))}") from None


@contextmanager
def _local_errors(folder: Path) -> Iterator[None]:
    """Turn a failure to write into the model folder into a one-line ``DownloadError``."""
    try:
        yield
    except OSError as exc:
        raise DownloadError(f"cannot write into {folder}: {exc.strerror or exc}") from None


def require_online(settings: HubSettings) -> None:
    """Raise ``DownloadError`` (one line saying which variable) when the settings forbid reaching the Hub."""
    if settings.offline:
        raise DownloadError(_offline_message(settings))


def _offline_message(settings: HubSettings) -> str:
    return (
        f"offline: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so {settings.endpoint} is not contacted; "
        "unset it to download"
    )


def _unreachable_message(settings: HubSettings, doing: str, exc: Exception) -> str:
    cause = exc.__cause__ if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None else exc
    hint = "check the network connection" + (" and HF_ENDPOINT" if settings.endpoint != DEFAULT_ENDPOINT else "")
    reason = _first_line(str(cause)) or type(cause).__name__
    return f"no network: cannot reach {settings.endpoint} while {doing} ({reason}); {hint}"


def _nothing_message(repo_id: str, revision: str, names: list[str], include: Sequence[str], skipped: list[str]) -> str:
    """Why a plan would fetch nothing (or, by default, no weights), and what to do instead."""
    where = f"{repo_id}@{revision}"
    if not names:
        return f"{where} has no files"
    examples = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    if skipped:
        return (
            f"only pickled weights ({', '.join(skipped[:3])}) match in {where}, and pickles are never downloaded "
            f"when the repo has safetensors; its files: {examples}"
        )
    if include:
        patterns = " ".join(repr(pattern) for pattern in include)
        return f"no file of {where} matches --include {patterns}; its files: {examples}"
    pickles = [name for name in sorted(names) if _suffix(name) in PICKLE_SUFFIXES]
    if pickles:
        return (
            f"{where} has no safetensors/gguf weights, only pickled ones ({', '.join(pickles[:3])}); "
            f"they are downloaded only when asked for, e.g. --include '*{_suffix(pickles[0])}' (if you trust the repo)"
        )
    return f"{where} has no safetensors/gguf weights; choose files with --include (its files: {examples})"


def _no_tokenizer_message(repo_id: str, revision: str, names: list[str]) -> str:
    examples = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    patterns = " ".join(TOKENIZER_PATTERNS)
    return f"{repo_id}@{revision} has no tokenizer files ({patterns}); its files: {examples or 'none'}"


def _already_there(item: PlannedFile) -> bool:
    """Whether a flat target already holds this file (same size; the Hub's size unknown counts as same)."""
    return item.target.is_file() and (item.size is None or _size_of(item.target) == item.size)


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _size_of(path: Path) -> int:
    return path.stat().st_size


def _repo_name(repo_id: str) -> str:
    return repo_id.rstrip("/").rsplit("/", 1)[-1]


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _status(exc: HfHubHTTPError) -> str:
    response = getattr(exc, "response", None)
    return f"HTTP {response.status_code}" if response is not None else "HTTP error"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
