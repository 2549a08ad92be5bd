"""Tokenizers in the model folders: found in any ``tokenizers`` folder, loaded locally (tokenizer.json, or a bare
sentencepiece model as google/umt5-xxl ships it), and a missing one named with the command that fetches it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from models.errors import CorruptModelFileError, ModelLoadError
from models.extra_paths import ExtraModelPaths
from models.folders import ModelFolders, UnsafeModelPathError
from models.text_encoders.tokenizers import MissingTokenizerError, fetch_command, load_tokenizer, tokenizer_sources
from models.tiny.text import TINY_UMT5_CONFIG, write_tiny_tokenizer

FETCH = "./start.sh download google/umt5-xxl --folder tokenizers"


@pytest.fixture
def folders(tmp_path: Path) -> ModelFolders:
    return ModelFolders(tmp_path / "models")


def test_the_tiny_tokenizer_loads_with_umt5_special_ids(folders: ModelFolders) -> None:
    write_tiny_tokenizer(folders.folder("tokenizers") / "umt5-xxl")
    tokenizer = load_tokenizer(folders, "umt5-xxl")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert len(tokenizer) == TINY_UMT5_CONFIG["vocab_size"]
    words = "a cat is walking on the beach".split()
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(" ".join(words)).input_ids)
    assert tokens == [*(f"\u2581{word}" for word in words), "</s>"]  # one piece per word, then </s>
    assert tokenizer.convert_ids_to_tokens(tokenizer("zebra").input_ids)[1:-1] == list("zebra")  # spelled out
    assert load_tokenizer(folders, "umt5-xxl") is not tokenizer  # nothing cached


def test_the_tiny_tokenizer_is_deterministic(tmp_path: Path) -> None:
    first = write_tiny_tokenizer(tmp_path / "one")
    second = write_tiny_tokenizer(tmp_path / "two")
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in second.iterdir()) and "tokenizer.json" in names
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in names)


def test_a_sentencepiece_model_alone_loads_as_in_the_umt5_repo(folders: ModelFolders) -> None:
    sentencepiece = pytest.importorskip("sentencepiece")
    sentences = ["a cat walks on the beach in the snow", "the red car drives along the river at night"] * 20
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=40,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    folder = folders.folder("tokenizers") / "umt5-xxl"
    folder.mkdir(parents=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    tokenizer = load_tokenizer(folders, "umt5-xxl")
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    text = "a red cat on the snow"
    assert tokenizer(text).input_ids == [*processor.encode(text), 1]


def test_a_missing_tokenizer_names_the_command_that_fetches_it(folders: ModelFolders) -> None:
    assert tokenizer_sources()["umt5-xxl"] == "google/umt5-xxl" and fetch_command("umt5-xxl") == FETCH
    with pytest.raises(MissingTokenizerError) as raised:
        load_tokenizer(folders, "umt5-xxl")
    message = str(raised.value)
    assert isinstance(raised.value, ModelLoadError) and message.startswith("umt5-xxl: tokenizer not found")
    assert message.endswith(f"fetch it with: {FETCH}") and str(folders.folder("tokenizers")) in message
    with pytest.raises(MissingTokenizerError, match=r"put a tokenizer folder named 'mine'"):
        load_tokenizer(folders, "mine")


def test_every_tokenizers_folder_is_searched(tmp_path: Path) -> None:
    extra = tmp_path / "shared" / "tokenizers"
    write_tiny_tokenizer(extra / "umt5-xxl")
    folders = ModelFolders(tmp_path / "models", ExtraModelPaths(first={}, last={"tokenizers": (extra,)}))
    assert load_tokenizer(folders, "umt5-xxl").eos_token_id == 1
    bare = ModelFolders(tmp_path / "models")
    with pytest.raises(MissingTokenizerError):
        load_tokenizer(bare, "umt5-xxl")


def test_broken_folders_and_bad_names_are_clear(folders: ModelFolders) -> None:
    root = folders.folder("tokenizers")
    (root / "empty").mkdir(parents=True)
    with pytest.raises(CorruptModelFileError, match=r"^empty: the folder holds no tokenizer files"):
        load_tokenizer(folders, "empty")
    (root / "garbage").mkdir()
    (root / "garbage" / "tokenizer.json").write_text("{not json")
    (root / "garbage" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    with pytest.raises(CorruptModelFileError, match=r"^garbage: not a loadable tokenizer folder: "):
        load_tokenizer(folders, "garbage")
    (root / "file").write_text("x")
    with pytest.raises(CorruptModelFileError, match=r"must be a folder"):
        load_tokenizer(folders, "file")
    for name in ("../umt5-xxl", "a/b", ""):
        with pytest.raises(UnsafeModelPathError):
            load_tokenizer(folders, name)
