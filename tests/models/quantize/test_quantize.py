"""torchao quantization: the skip patterns, and ``QuantizeModel``, ``SaveQuantizedModel`` and ``LoadQuantizedModel``
on the tiny Wan 2.1 T2V model.

Bounds: the largest difference of the sampled latent from the float32 model's, relative to the float32 latent's
largest magnitude (32x32, 5 frames, 2 euler steps, cfg 5, all 26 Linear layers quantized). Measured with torchao
0.18 on CPU: int8_weight_only 0.0026, int8_dynamic 0.020, fp8_weight_only 0.017; the bounds allow about 3-4x that.
Skipping condition_embedder and proj_out lowers each about tenfold on this model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from models.errors import CorruptModelFileError
from models.model_handle import module_nbytes
from models.quantize.torchao_quant import (
    QUANTIZED_METADATA_KEY,
    QuantizedFileInfo,
    layer_matches,
    parse_skip_patterns,
    quantize_network,
)
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader
from nodes.quantize import LoadQuantizedModel, QuantizeModel, SaveQuantizedModel
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
SAVED_FOLDER = "test_quantized"  # below diffusion_models in the shared tiny models folder; removed after each test
BOUNDS = {"int8_weight_only": 0.01, "int8_dynamic": 0.06, "fp8_weight_only": 0.06}
METHODS = tuple(BOUNDS)


class Net(torch.nn.Module):
    """Named layers like a transformer's: an embedding Linear, two blocks of two Linears, a norm and an output."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(32, 64)
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleDict({"attn": torch.nn.Linear(64, 64), "ffn": torch.nn.Linear(64, 64)}) for _ in range(2)
        )
        self.norm = torch.nn.LayerNorm(64)
        self.proj_out = torch.nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = x + block["ffn"](torch.relu(block["attn"](x)))
        return self.proj_out(self.norm(x))


def net() -> Net:
    torch.manual_seed(0)
    return Net().eval().requires_grad_(False)


def quantized_names(network: torch.nn.Module) -> set[str]:
    return {name for name, tensor in network.named_parameters() if type(tensor).__module__.startswith("torchao.")}


@pytest.fixture
def runner(runner: NodeRunner, tiny_models_dir: Path) -> Iterator[NodeRunner]:
    """The shared runner; the quantized files a test saves among the tiny models are removed after it."""
    yield runner
    shutil.rmtree(tiny_models_dir / "diffusion_models" / SAVED_FOLDER, ignore_errors=True)


@pytest.fixture
def parts(runner: NodeRunner) -> dict[str, Any]:
    (model,) = runner.call(UNETLoader, unet_name=T2V, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    positive, negative = fidelity.encode_prompts(runner, clip, "a red car", "blurry")
    (latent,) = runner.call(EmptyHunyuanLatentVideo, width=32, height=32, length=5, batch_size=1)
    return {"model": model, "positive": positive, "negative": negative, "latent": latent}


def sample(runner: NodeRunner, parts: dict[str, Any], model: Any) -> torch.Tensor:
    inputs = {**parts, "model": model}
    return fidelity.ksample(runner, **inputs, seed=7, steps=2, cfg=5.0)["samples"]


def save(runner: NodeRunner, model: Any, filename_prefix: str) -> dict[str, Any]:
    """``SaveQuantizedModel``'s ui."""
    return runner.call(SaveQuantizedModel, model=model, filename_prefix=filename_prefix)["ui"]


def quantize(runner: NodeRunner, model: Any, method: str, skip_layers: str = "") -> tuple[Any, str]:
    """The quantized MODEL and the node's text."""
    returned = runner.call(QuantizeModel, model=model, method=method, skip_layers=skip_layers)
    return returned["result"][0], returned["ui"]["text"][0]


def test_patterns_name_dotted_runs_or_globs() -> None:
    assert parse_skip_patterns(" proj_out, ,blocks.*.ffn ,") == ("proj_out", "blocks.*.ffn")
    assert layer_matches("blocks.0.attn", "blocks.0") and layer_matches("blocks.0.attn", "attn")
    assert layer_matches("blocks.1.ffn", "blocks.*.ffn") and layer_matches("proj_out", "proj_out")
    assert not layer_matches("blocks.10.attn", "blocks.1") and not layer_matches("proj_out_2", "proj_out")
    with pytest.raises(ValueError, match=r"skip_layers: 'proj out' has a space"):
        parse_skip_patterns("embed,proj out")


def test_skipped_layers_keep_their_weights_and_the_rest_shrink_fourfold() -> None:
    network, reference = net(), net()
    x = torch.randn(3, 32)
    result = quantize_network(network, "int8_weight_only", ("blocks.1", "proj_out", "norm"))
    assert quantized_names(network) == {"embed.weight", "blocks.0.attn.weight", "blocks.0.ffn.weight"}
    assert torch.equal(network.proj_out.weight, reference.proj_out.weight)
    assert result.layers == 3 and result.bytes_before == module_nbytes(reference)
    quantized_weights = (32 * 64 + 2 * 64 * 64) * 4  # float32 bytes of the three weights
    rows = 3 * 64
    saved = quantized_weights - (quantized_weights // 4 + rows * (4 + 1))  # int8 data, float32 scale, int8 zero
    assert result.bytes_before - result.bytes_after == saved
    assert (network(x) - reference(x)).abs().max() < 0.02 * reference(x).abs().max()


@pytest.mark.parametrize("method", METHODS)
def test_each_method_stays_within_its_bound_and_leaves_the_input_model_exact(
    runner: NodeRunner, parts: dict[str, Any], method: str
) -> None:
    model = parts["model"]
    exact = sample(runner, parts, model)
    quantized, text = quantize(runner, model, method)
    with model.handle.use() as network:
        before = module_nbytes(network)
    with quantized.handle.use() as network:
        after = module_nbytes(network)
        assert quantized_names(network)  # a different network from the input's
    assert after < 0.5 * before
    assert text.startswith(f"{method}: 26 Linear layers quantized; ")
    error = (sample(runner, parts, quantized) - exact).abs().max() / exact.abs().max()
    assert 0 < error < BOUNDS[method]
    assert torch.equal(sample(runner, parts, model), exact)  # the input MODEL still gives its exact output


@pytest.mark.parametrize("method", METHODS)
def test_a_saved_quantized_model_reloads_to_identical_outputs(
    runner: NodeRunner, parts: dict[str, Any], tiny_models_dir: Path, method: str
) -> None:
    quantized, _text = quantize(runner, parts["model"], method, "condition_embedder,proj_out")
    ui = save(runner, model=quantized, filename_prefix=f"{SAVED_FOLDER}/wan")
    name = f"{SAVED_FOLDER}/wan_00001_.safetensors"
    assert ui == {"text": [f"saved diffusion_models/{name} ({method})"]}
    (loaded,) = runner.call(LoadQuantizedModel, model_name=name)
    assert loaded.handle is not quantized.handle and loaded.compute_dtype == quantized.compute_dtype
    assert loaded.adapter.describe() == quantized.adapter.describe()
    assert torch.equal(sample(runner, parts, loaded), sample(runner, parts, quantized))
    save(runner, model=loaded, filename_prefix=f"{SAVED_FOLDER}/wan")  # numbered: no overwrite
    assert (tiny_models_dir / "diffusion_models" / f"{SAVED_FOLDER}/wan_00002_.safetensors").is_file()


def test_bad_inputs_are_refused_naming_the_node_and_input(runner: NodeRunner, parts: dict[str, Any]) -> None:
    model = parts["model"]
    exact = sample(runner, parts, model)
    with pytest.raises(ValueError, match=r"QuantizeModel: method: 'int4_weight_only' is not one of int8_weight_only"):
        quantize(runner, model, "int4_weight_only")
    with pytest.raises(ValueError, match=r"QuantizeModel: skip_layers: 'proj_outt' names no layer of the network"):
        quantize(runner, model, "int8_weight_only", "proj_out,proj_outt")
    with pytest.raises(ValueError, match=r"QuantizeModel: skip_layers: the patterns skip all 26 Linear layers"):
        quantize(runner, model, "int8_weight_only", "*")
    assert torch.equal(sample(runner, parts, model), exact)  # a refused quantization leaves the model usable
    quantized, _text = quantize(runner, model, "int8_dynamic")
    with pytest.raises(ValueError, match=r"QuantizeModel: model: .* is already quantized"):
        quantize(runner, quantized, "int8_weight_only")
    (fp8,) = runner.call(UNETLoader, unet_name=T2V, weight_dtype="fp8_e4m3fn")
    with pytest.raises(ValueError, match=r"QuantizeModel: model: its weights are stored in float8_e4m3fn"):
        quantize(runner, fp8, "int8_weight_only")
    with pytest.raises(ValueError, match=r"SaveQuantizedModel: model: it is not quantized"):
        save(runner, model=model, filename_prefix=f"{SAVED_FOLDER}/plain")
    with pytest.raises(CorruptModelFileError, match=rf"LoadQuantizedModel: model_name: {T2V}: not a quantized model"):
        runner.call(LoadQuantizedModel, model_name=T2V)
    with pytest.raises(ValueError, match=r"LoadQuantizedModel: model_name: 'nope.safetensors' is not in"):
        runner.call(LoadQuantizedModel, model_name="nope.safetensors")


def test_forged_and_unreadable_files_are_refused(runner: NodeRunner, tiny_models_dir: Path) -> None:
    info = QuantizedFileInfo("Sequential", "{}", "int8_weight_only", "float32", "x")
    folder = tiny_models_dir / "diffusion_models" / SAVED_FOLDER
    folder.mkdir()
    save_file(
        {"network.weight": torch.zeros(1)}, folder / "forged.safetensors", {QUANTIZED_METADATA_KEY: info.to_json()}
    )
    with pytest.raises(CorruptModelFileError, match=r"forged.safetensors: its network class 'Sequential' is not one"):
        runner.call(LoadQuantizedModel, model_name=f"{SAVED_FOLDER}/forged.safetensors")
    (folder / "garbage.pt").write_bytes(b"not safetensors" * 8)
    with pytest.raises(CorruptModelFileError, match=r"model_name: garbage.pt: not a readable safetensors file"):
        runner.call(LoadQuantizedModel, model_name=f"{SAVED_FOLDER}/garbage.pt")
