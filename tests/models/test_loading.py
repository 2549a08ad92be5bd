"""Safe loading: formats round-trip, unsafe and damaged files are refused by name, diffusers folders load."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers / huggingface_hub read it; nothing here may reach the hub

import numpy as np
import pytest
import torch

from models.errors import CorruptModelFileError, ModelLoadError, UnsafeModelFileError
from models.loading import detect_weight_format, is_diffusers_folder, load_diffusers_folder, load_state_dict
from tests.models import tiny_models


def _reference() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "blocks.0.weight": torch.randn(16, 8, generator=generator),
        "blocks.0.bias": torch.randn(8, generator=generator).half(),
        "position_ids": torch.arange(10),
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return _reference()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, reference: dict[str, torch.Tensor]) -> dict[str, Path]:
    """One file per format, all holding ``reference``."""
    root = tmp_path_factory.mktemp("weights")
    return {
        "safetensors": tiny_models.save_safetensors(reference, root / "model.safetensors"),
        "zip": tiny_models.save_torch(reference, root / "model.pt"),
        "legacy": tiny_models.save_torch(reference, root / "legacy.ckpt", zip_format=False),
    }


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    return path, tiny_models.save_tiny_gguf(path)


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.save_tiny_wan_vae(tmp_path_factory.mktemp("vae") / "wan_vae")


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.save_tiny_wan_pipeline(tmp_path_factory.mktemp("pipeline") / "tiny_wan")


def _cut(source: Path, target: Path, size: int) -> Path:
    target.write_bytes(source.read_bytes()[:size])
    return target


def _assert_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{path.name}: "), message
    assert excinfo.value.path == path
    for word in words:
        assert word in message, message


# --- round trips -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["safetensors", "zip", "legacy"])
def test_each_format_loads_the_saved_tensors(weights, reference, kind):
    loaded = load_state_dict(weights[kind])
    assert loaded.keys() == reference.keys()
    for name, tensor in reference.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    real = str(path.resolve())
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith(real):
                low, high = line.split()[0].split("-")
                ranges.append((int(low, 16), int(high, 16)))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc/self/maps")
@pytest.mark.parametrize("kind", ["safetensors", "zip"])
def test_cpu_load_is_memory_mapped(weights, kind):
    # The tensors' data lies inside a mapping of the file itself, so nothing was read into private buffers.
    loaded = load_state_dict(weights[kind])
    ranges = _mapped_ranges(weights[kind])
    assert ranges
    for tensor in loaded.values():
        assert any(low <= tensor.data_ptr() < high for low, high in ranges)


def test_dtype_casts_floating_tensors_only(weights):
    loaded = load_state_dict(weights["safetensors"], dtype=torch.bfloat16)
    assert loaded["blocks.0.weight"].dtype == torch.bfloat16
    assert loaded["blocks.0.bias"].dtype == torch.bfloat16
    assert loaded["position_ids"].dtype == torch.int64


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "module"])
def test_wrapped_checkpoints_are_unwrapped(tmp_path, reference, wrapper):
    path = tiny_models.save_torch({wrapper: reference, "global_step": 7, "epoch": 2}, tmp_path / "train.ckpt")
    loaded = load_state_dict(path)
    assert loaded.keys() == reference.keys()
    assert torch.equal(loaded["blocks.0.weight"], reference["blocks.0.weight"])


def test_nested_wrappers_and_non_tensor_entries(tmp_path, reference):
    path = tiny_models.save_torch({"model": {"module": {**reference, "note": "hi"}}}, tmp_path / "nested.pth")
    assert load_state_dict(path).keys() == reference.keys()


def test_a_checkpoint_that_is_not_a_dict_is_corrupt(tmp_path):
    path = tiny_models.save_torch([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_state_dict(path)
    _assert_error(excinfo, path, "not a state dict")


def test_gguf_loads_plain_and_quantized_tensors(gguf_file):
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    path, originals = gguf_file
    loaded = load_state_dict(path)
    assert loaded.keys() == originals.keys()
    for name in ("blocks.0.weight", "blocks.0.bias", "norm.weight"):
        assert not isinstance(loaded[name], GGUFParameter)
        assert torch.equal(loaded[name], torch.from_numpy(originals[name]))
    quantized = loaded["proj.weight"]
    assert isinstance(quantized, GGUFParameter)
    restored = dequantize_gguf_tensor(quantized)
    original = torch.from_numpy(originals["proj.weight"])
    assert restored.shape == original.shape
    step = original.abs().max() / 127  # Q8_0: 8-bit values with one scale per 32-value block
    assert (restored - original).abs().max() <= step


def test_gguf_dtype_leaves_quantized_blocks_alone(gguf_file):
    from diffusers.quantizers.gguf.utils import GGUFParameter

    loaded = load_state_dict(gguf_file[0], dtype=torch.float16)
    assert loaded["blocks.0.weight"].dtype == torch.float16
    assert isinstance(loaded["proj.weight"], GGUFParameter)
    assert loaded["proj.weight"].dtype == torch.uint8


def test_gguf_quantization_diffusers_cannot_load_is_refused(tmp_path):
    from gguf import GGMLQuantizationType, GGUFWriter

    path = tmp_path / "q8_1.gguf"
    writer = GGUFWriter(path, arch="wan")
    blocks = np.zeros((1, 40), dtype=np.uint8)  # one Q8_1 block: 32 values in 40 bytes
    writer.add_tensor("proj.weight", blocks, raw_shape=blocks.shape, raw_dtype=GGMLQuantizationType.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_state_dict(path)
    _assert_error(excinfo, path, "Q8_1")


# --- detection by content ----------------------------------------------------------------------------------------


def test_detection_reads_content(weights, gguf_file):
    assert detect_weight_format(weights["safetensors"]) == "safetensors"
    assert detect_weight_format(weights["zip"]) == "pickle"
    assert detect_weight_format(weights["legacy"]) == "pickle"
    assert detect_weight_format(gguf_file[0]) == "gguf"


@pytest.mark.parametrize("suffix", [".safetensors", ".sft", ".gguf"])
def test_a_pickle_behind_a_safe_suffix_is_refused(tmp_path, weights, suffix):
    renamed = tmp_path / f"model{suffix}"
    shutil.copy(weights["zip"], renamed)
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_state_dict(renamed)
    _assert_error(excinfo, renamed, "pickle")


def test_a_safe_format_behind_another_suffix_loads_by_content(tmp_path, weights, gguf_file, reference):
    as_pt = tmp_path / "model.pt"
    shutil.copy(weights["safetensors"], as_pt)
    assert detect_weight_format(as_pt) == "safetensors"
    assert torch.equal(load_state_dict(as_pt)["blocks.0.weight"], reference["blocks.0.weight"])
    as_safetensors = tmp_path / "model.safetensors"
    shutil.copy(gguf_file[0], as_safetensors)
    assert detect_weight_format(as_safetensors) == "gguf"


# --- pickles that would run code ---------------------------------------------------------------------------------


def test_the_malicious_payload_is_live(tmp_path):
    # Control: plain pickle does run it, so the refusals below are meaningful.
    marker = tmp_path / "ran"
    path = tiny_models.save_malicious_pickle(tmp_path / "evil.pkl", marker, zip_format=None)
    pickle.loads(path.read_bytes())["bias"].close()
    assert marker.exists()


@pytest.mark.parametrize(("zip_format", "name"), [(True, "evil.pt"), (False, "evil.ckpt"), (None, "evil.bin")])
def test_a_pickle_needing_code_is_refused_and_never_runs(tmp_path, zip_format, name):
    marker = tmp_path / "ran"
    path = tiny_models.save_malicious_pickle(tmp_path / name, marker, zip_format=zip_format)
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_state_dict(path)
    _assert_error(excinfo, path, "weights_only=True", "refused", "safetensors")
    assert "open" in excinfo.value.reason
    assert not marker.exists()


def _vae_component_with_pickle(tmp_path: Path, vae_folder: Path, marker: Path) -> Path:
    folder = tmp_path / "evil_vae"
    folder.mkdir()
    shutil.copy(vae_folder / "config.json", folder / "config.json")
    tiny_models.save_malicious_pickle(folder / "diffusion_pytorch_model.bin", marker)
    return folder


def test_a_malicious_bin_in_a_component_folder_is_refused(tmp_path, vae_folder):
    marker = tmp_path / "ran"
    folder = _vae_component_with_pickle(tmp_path, vae_folder, marker)
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder / "diffusion_pytorch_model.bin", "weights_only=True", "io.open")
    assert not marker.exists()


def test_diffusers_itself_unpickles_weights_only(tmp_path, vae_folder):
    # What we rely on past our own check: diffusers' loader refuses the payload too, without running it.
    from diffusers import AutoencoderKLWan

    marker = tmp_path / "ran"
    folder = _vae_component_with_pickle(tmp_path, vae_folder, marker)
    with pytest.raises((OSError, ValueError)):
        AutoencoderKLWan.from_pretrained(folder, local_files_only=True)
    assert not marker.exists()


def test_transformers_itself_unpickles_weights_only(tmp_path, pipeline_folder):
    from transformers import UMT5EncoderModel

    marker = tmp_path / "ran"
    folder = tmp_path / "evil_text_encoder"
    folder.mkdir()
    shutil.copy(pipeline_folder / "text_encoder" / "config.json", folder / "config.json")
    tiny_models.save_malicious_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        UMT5EncoderModel.from_pretrained(folder, local_files_only=True)
    assert not marker.exists()
    with pytest.raises(UnsafeModelFileError):
        load_diffusers_folder(folder)
    assert not marker.exists()


# --- damaged and foreign files -----------------------------------------------------------------------------------


def _header_size(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("where", ["mid-tensor", "mid-header"])
def test_truncated_safetensors_is_corrupt(tmp_path, weights, where):
    source = weights["safetensors"]
    size = source.stat().st_size - 10 if where == "mid-tensor" else _header_size(source) // 2
    path = _cut(source, tmp_path / "cut.safetensors", size)
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_state_dict(path)
    _assert_error(excinfo, path, "safetensors")


@pytest.mark.parametrize("kind", ["safetensors", "zip", "legacy", "gguf"])
def test_every_truncation_is_corrupt(tmp_path, weights, gguf_file, kind):
    # Cut points across the whole file: headers, pickles, zip directory, tensor data.
    source = gguf_file[0] if kind == "gguf" else weights[kind]
    size = source.stat().st_size
    end = size - 32 if kind == "gguf" else size  # GGUF pads its data to 32 bytes; a cut in the padding loses nothing
    for cut in range(0, end, max(1, end // 60)):
        path = _cut(source, tmp_path / source.name, cut)
        with pytest.raises(CorruptModelFileError) as excinfo:
            load_state_dict(path)
        _assert_error(excinfo, path)


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (b"", CorruptModelFileError, ("empty",)),
        (b"\x01\x02\x03", CorruptModelFileError, ("too short",)),
        (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), UnsafeModelFileError, ("not a",)),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n", CorruptModelFileError, ("LFS",)),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", CorruptModelFileError, ("HTML",)),
    ],
    ids=["empty", "short", "random", "lfs-pointer", "html"],
)
def test_files_that_hold_no_weights(tmp_path, content, error, words):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(error) as excinfo:
        load_state_dict(path)
    _assert_error(excinfo, path, *words)


def test_zip_archives_that_are_not_checkpoints_are_refused(tmp_path):
    plain = tmp_path / "images.pt"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("a.png", b"not weights")
    scripted = tmp_path / "scripted.pt"
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("scripted/data.pkl", b"\x80\x02}.")
        archive.writestr("scripted/constants.pkl", b"\x80\x02).")
    for path, word in [(plain, "data.pkl"), (scripted, "TorchScript")]:
        with pytest.raises(UnsafeModelFileError) as excinfo:
            load_state_dict(path)
        _assert_error(excinfo, path, word)


def test_missing_file_and_folder_are_plain_load_errors(tmp_path):
    for path in (tmp_path / "absent.safetensors", tmp_path):
        with pytest.raises(ModelLoadError) as excinfo:
            load_state_dict(path)
        assert type(excinfo.value) is ModelLoadError
        _assert_error(excinfo, path)


# --- diffusers folders -------------------------------------------------------------------------------------------


def test_folder_kinds(tmp_path, vae_folder, pipeline_folder):
    assert is_diffusers_folder(pipeline_folder) == "pipeline"
    assert is_diffusers_folder(vae_folder) == "component"
    assert is_diffusers_folder(pipeline_folder / "text_encoder") == "component"
    assert is_diffusers_folder(pipeline_folder / "scheduler") is None
    assert is_diffusers_folder(tmp_path) is None
    (tmp_path / "config.json").write_text("{not json")
    assert is_diffusers_folder(tmp_path) is None


def test_component_folder_matches_the_original(vae_folder):
    original = tiny_models.tiny_wan_vae()
    loaded = load_diffusers_folder(vae_folder)
    assert type(loaded) is type(original)
    sample = torch.randn(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = original(sample).sample
        actual = loaded(sample).sample
    assert (actual - expected).abs().max() < 1e-6


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_component_stored_as_a_safe_pickle_loads(tmp_path, vae_folder, zip_format):
    folder = tmp_path / "pickled_vae"
    folder.mkdir()
    shutil.copy(vae_folder / "config.json", folder / "config.json")
    original = tiny_models.tiny_wan_vae()
    tiny_models.save_torch(original.state_dict(), folder / "diffusion_pytorch_model.bin", zip_format=zip_format)
    loaded = load_diffusers_folder(folder)
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_component_folder_in_a_dtype(vae_folder):
    loaded = load_diffusers_folder(vae_folder, torch_dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in loaded.parameters()} == {torch.bfloat16}


def test_text_encoder_component_loads_through_transformers(pipeline_folder):
    from transformers import UMT5EncoderModel

    loaded = load_diffusers_folder(pipeline_folder / "text_encoder")
    assert isinstance(loaded, UMT5EncoderModel)
    original = tiny_models.tiny_umt5_encoder()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def _wan_frames(pipeline) -> torch.Tensor:
    result = pipeline(
        prompt="a cat runs on the beach",
        num_frames=5,
        height=16,
        width=16,
        num_inference_steps=2,
        guidance_scale=1.0,
        max_sequence_length=16,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    )
    return result.frames


def test_pipeline_folder_matches_the_original(pipeline_folder):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    loaded = load_diffusers_folder(pipeline_folder)
    assert isinstance(loaded, WanPipeline)
    original = WanPipeline(
        tokenizer=tiny_models.tiny_t5_tokenizer(),
        text_encoder=tiny_models.tiny_umt5_encoder(),
        vae=tiny_models.tiny_wan_vae(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=tiny_models.tiny_wan_transformer(),
    )
    for pipeline in (loaded, original):
        pipeline.set_progress_bar_config(disable=True)
    expected, actual = _wan_frames(original), _wan_frames(loaded)
    assert actual.shape == (1, 5, 3, 16, 16)
    assert (actual - expected).abs().max() < 1e-6


def _copy_pipeline(pipeline_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline_folder, tmp_path / "copy"))


def test_bad_component_json_names_folder_and_file(tmp_path, pipeline_folder):
    folder = _copy_pipeline(pipeline_folder, tmp_path)
    (folder / "vae" / "config.json").write_text('{"_class_name": ')
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder, "vae/config.json", "not valid JSON")


def test_missing_component_folder(tmp_path, pipeline_folder):
    folder = _copy_pipeline(pipeline_folder, tmp_path)
    shutil.rmtree(folder / "transformer")
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder, "transformer/")


def test_missing_weights_in_a_component(tmp_path, pipeline_folder):
    folder = _copy_pipeline(pipeline_folder, tmp_path)
    (folder / "text_encoder" / "model.safetensors").unlink()
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder, "text_encoder", "no weights")


def test_truncated_weights_in_a_component(tmp_path, vae_folder):
    folder = Path(shutil.copytree(vae_folder, tmp_path / "vae"))
    weights_file = folder / "diffusion_pytorch_model.safetensors"
    _cut(weights_file, weights_file, weights_file.stat().st_size - 100)
    with pytest.raises(CorruptModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, weights_file, "safetensors")


def test_missing_model_index_json_of_a_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not a diffusers folder"):
        load_diffusers_folder(tmp_path)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"_class_name": ["pipeline", "MyPipeline"]}, ("not a diffusers pipeline",)),
        ({"vae": ["my_package", "MyVae"]}, ("my_package", "only diffusers and transformers")),
    ],
    ids=["custom-pipeline-code", "foreign-library"],
)
def test_folders_asking_for_custom_code_are_refused(tmp_path, pipeline_folder, edit, words):
    folder = _copy_pipeline(pipeline_folder, tmp_path)
    index_path = folder / "model_index.json"
    index_path.write_text(json.dumps({**json.loads(index_path.read_text()), **edit}))
    (folder / "pipeline.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder, *words)
    assert not (tmp_path / "ran").exists()


def test_remote_code_options_are_refused(vae_folder):
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_diffusers_folder(vae_folder, trust_remote_code=True)


def test_unknown_component_class_is_refused(tmp_path, vae_folder):
    folder = Path(shutil.copytree(vae_folder, tmp_path / "vae"))
    config_path = folder / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "_class_name": "os"}))
    with pytest.raises(UnsafeModelFileError) as excinfo:
        load_diffusers_folder(folder)
    _assert_error(excinfo, folder, "not a diffusers model class")
