"""Tokenizers kept in the model folders, as ``<tokenizers>/<name>/`` folders that ``AutoTokenizer`` reads.

Text-encoder single files carry no tokenizer, so a text encoder's tokenizer is fetched once from its public repo
(each ``TextEncoderPart.tokenizer_repo`` of ``models.families.catalog``) with
``./start.sh download <repo> --folder tokenizers``, which keeps the repo's files under
``<tokenizers>/<repo name>/``. Loading is local only and caches nothing: each call reads the folder again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.errors import CorruptModelFileError, ModelLoadError
from models.folders import TOKENIZERS_KEY, ModelFolders, UnsafeModelPathError

__all__ = ["MissingTokenizerError", "fetch_command", "load_tokenizer", "tokenizer_sources"]

logger = logging.getLogger(__name__)

START_COMMAND = "./start.sh"  # how the README starts Reelgraph; ``download`` is one of its verbs
# Files that make a folder a tokenizer: a fast tokenizer, a sentencepiece model, or a config naming the class.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "tokenizer.model")


class MissingTokenizerError(ModelLoadError):
    """No folder of the ``tokenizers`` key holds the tokenizer; the message names the command that fetches it."""

    def __init__(self, path: Path, searched: tuple[Path, ...]) -> None:
        self.searched = searched
        places = ", ".join(str(folder) for folder in searched)
        super().__init__(path, f"tokenizer not found (looked in {places}); {_how_to_get(path.name)}")


def tokenizer_sources() -> dict[str, str]:
    """Tokenizer folder name -> the public repo that ``download`` fetches it from (its repo name is the folder name),
    for every text encoder of the catalog."""
    from models.families.catalog import TEXT_ENCODER_KINDS

    return {part.tokenizer: part.tokenizer_repo for kind in TEXT_ENCODER_KINDS for part in kind.parts}


def fetch_command(name: str) -> str | None:
    """The one command that fetches tokenizer ``name`` into the primary tokenizers folder, when its source is known."""
    repo = tokenizer_sources().get(name)
    return None if repo is None else f"{START_COMMAND} download {repo} --folder {TOKENIZERS_KEY}"


def load_tokenizer(folders: ModelFolders, name: str) -> Any:
    """The transformers tokenizer in the first of the ``tokenizers`` folders that has ``name/``, read locally.

    Raises ``MissingTokenizerError`` when no folder has it, ``UnsafeModelPathError`` for a name that is no plain
    folder name, and ``CorruptModelFileError`` for a folder that holds no loadable tokenizer.
    """
    if not name or "/" in name or "\\" in name:
        raise UnsafeModelPathError(f"tokenizer name {name!r} is not a folder name")
    path = folders.resolve(TOKENIZERS_KEY, name)
    if not path.exists():
        raise MissingTokenizerError(folders.folder(TOKENIZERS_KEY) / name, folders.folders(TOKENIZERS_KEY))
    if not path.is_dir():
        raise CorruptModelFileError(path, "a tokenizer must be a folder, this is a file")
    if not any((path / file).is_file() for file in TOKENIZER_FILES):
        raise CorruptModelFileError(
            path, f"the folder holds no tokenizer files ({', '.join(TOKENIZER_FILES)}); {_how_to_get(name)}"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except ImportError as exc:
        raise ModelLoadError(path, f"loading this tokenizer needs a missing package: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptModelFileError(path, f"not a loadable tokenizer folder: {reason}") from exc
    logger.debug("tokenizer %s from %s: %s", name, path, type(tokenizer).__name__)
    return tokenizer


def _how_to_get(name: str) -> str:
    command = fetch_command(name)
    if command is None:
        return f"put a tokenizer folder named {name!r} (tokenizer.json or spiece.model, with its configs) there"
    return f"fetch it with: {command}"
