"""Diffusers pipeline folders (the tiny ``diffusers/*-Diffusers`` folders of ``make-tiny-models``): the same models
as the single files, sampled to identical frames; the A14B expert choice; and clear errors for broken folders."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.first_run import tiny_stand_in_names
from graph.cache import LRUOutputCache
from graph.executor import Executor
from graph.node_call import ExecutionBlocker
from graph.prompt import Prompt
from graph.registry import NodeRegistry
from graph.validation import validate_prompt
from models.diffusion_model import DiffusionModel
from models.encoders import ClipVisionEncoder, TextEncoder
from models.errors import CorruptModelFileError, ModelLoadError, UnsafeModelFileError
from models.folders import DIFFUSERS_KEY, ModelFolders
from models.memory import MODELS_SERVICE, ModelManager
from models.model_loaders import WrongModelKindError
from models.tiny.family_pipelines import TINY_FAMILY_PIPELINES
from models.tiny.pipelines import TINY_WAN_PIPELINES
from models.video_vae import VideoVAE
from nodes import register_builtin_nodes
from nodes.conditioning import CLIPTextEncode, CLIPVisionEncode, ConditioningZeroOut
from nodes.folders import FOLDERS_SERVICE, Folders
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, CLIPVisionLoader, UNETLoader, VAELoader
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.pipeline_loaders import DiffusersLoader, DiffusersPipelineLoader
from nodes.wan import WanImageToVideo
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

T2V = "Wan2.1-T2V-1.3B-Diffusers"
I2V = "Wan2.1-I2V-14B-480P-Diffusers"
A14B = "Wan2.2-I2V-A14B-Diffusers"
T2V_FILE, I2V_FILE = "wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_i2v_480p_14B_fp16.safetensors"
PROMPT = "a red car on the beach in snow"
SEED, SIZE, LENGTH = 11, 32, 5


def _file_models(runner: NodeRunner, unet: str) -> tuple:
    (model,) = runner.call(UNETLoader, unet_name=unet, weight_dtype="default")
    (clip,) = runner.call(CLIPLoader, clip_name="umt5_xxl_fp16.safetensors", type="wan")
    (vae,) = runner.call(VAELoader, vae_name="wan_2.1_vae.safetensors")
    (vision,) = runner.call(CLIPVisionLoader, clip_name="clip_vision_h.safetensors")
    return model, clip, vae, vision


def _folder_models(runner: NodeRunner, folder: str) -> tuple:
    return runner.call(DiffusersPipelineLoader, model_path=folder, transformer="transformer", weight_dtype="default")


def _video(
    runner: NodeRunner,
    model: DiffusionModel,
    clip: TextEncoder,
    vae: VideoVAE,
    vision: ClipVisionEncoder | None = None,
) -> torch.Tensor:
    """Frames sampled with ``model`` (2 euler steps); image-to-video from a fixed start image when ``vision``."""
    (positive,) = runner.call(CLIPTextEncode, clip=clip, text=PROMPT)
    (negative,) = runner.call(ConditioningZeroOut, conditioning=positive)
    if vision is None:
        (latent,) = runner.call(EmptyHunyuanLatentVideo, width=SIZE, height=SIZE, length=LENGTH, batch_size=1)
    else:
        start = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(3))
        (features,) = runner.call(CLIPVisionEncode, clip_vision=vision, image=start, crop="center")
        positive, negative, latent = runner.call(
            WanImageToVideo,
            positive=positive,
            negative=negative,
            vae=vae,
            width=SIZE,
            height=SIZE,
            length=LENGTH,
            batch_size=1,
            clip_vision_output=features,
            start_image=start,
        )
    samples = fidelity.ksample(runner, model, positive, negative, latent, seed=SEED, steps=2, cfg=4.0)
    return fidelity.decoded(runner, samples, vae)


def test_text_to_video_from_the_folder_equals_the_single_files(runner: NodeRunner) -> None:
    model, clip, vae, _ = _file_models(runner, T2V_FILE)
    from_files = _video(runner, model, clip, vae)
    model, clip, vae, _ = _folder_models(runner, T2V)
    from_folder = _video(runner, model, clip, vae)
    assert from_folder.shape == (LENGTH, SIZE, SIZE, 3) and from_folder.std() > 0.01
    assert torch.equal(from_folder, from_files)


def test_image_to_video_with_clip_vision_from_the_folder_equals_the_single_files(runner: NodeRunner) -> None:
    from_files = _video(runner, *_file_models(runner, I2V_FILE))
    model, clip, vae, vision = _folder_models(runner, I2V)
    assert model.adapter.spec.uses_clip_vision and vision.name == f"{I2V}/image_encoder"
    assert torch.equal(_video(runner, model, clip, vae, vision), from_files)


def test_diffusers_loader_gives_model_clip_and_vae(runner: NodeRunner) -> None:
    model, clip, vae = runner.call(DiffusersLoader, model_path=T2V)
    assert isinstance(model, DiffusionModel) and model.name == f"{T2V}/transformer"
    pipeline_model, pipeline_clip, pipeline_vae, _ = _folder_models(runner, T2V)
    assert (model.handle, clip.handle, vae.handle) == (pipeline_model.handle, pipeline_clip.handle, pipeline_vae.handle)
    assert model.adapter.spec == pipeline_model.adapter.spec and clip.tokenizer is not None


# The models the sampling tests above do not already compare (Wan 2.2 5B and both A14B experts).
_TRANSFORMERS = tuple(
    (folder, component, stem)
    for folder, tiny in TINY_WAN_PIPELINES.items()
    for component, stem in (("transformer", tiny.transformer), ("transformer_2", tiny.transformer_2))
    if stem is not None and folder not in (T2V, I2V)
)


@pytest.mark.parametrize(("folder", "component", "stem"), _TRANSFORMERS)
def test_each_transformer_is_its_single_file(runner: NodeRunner, folder: str, component: str, stem: str) -> None:
    """Same spec (variant, config) and the same weights as the release file, fp8-scaled experts after
    dequantisation; transformer_2 of the A14B folder is the low-noise expert."""
    (from_folder, *_) = runner.call(
        DiffusersPipelineLoader, model_path=folder, transformer=component, weight_dtype="default"
    )
    (from_file,) = runner.call(UNETLoader, unet_name=f"{stem}.safetensors", weight_dtype="default")
    assert from_folder.adapter.spec == from_file.adapter.spec
    with from_folder.handle.use() as folder_module, from_file.handle.use() as file_module:
        ours, theirs = folder_module.state_dict(), file_module.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]) for key in ours)


def test_the_a14b_experts_differ_and_fp8_storage_is_offered(runner: NodeRunner) -> None:
    def expert(transformer: str, weight_dtype: str = "default", offload: str = "auto") -> tuple:
        return runner.call(
            DiffusersPipelineLoader,
            model_path=A14B,
            transformer=transformer,
            weight_dtype=weight_dtype,
            offload=offload,
        )

    weight = "blocks.0.attn1.to_q.weight"
    (high, *_), (low, *_) = expert("transformer"), expert("transformer_2")
    with high.handle.use() as high_module, low.handle.use() as low_module:
        assert not torch.equal(high_module.state_dict()[weight], low_module.state_dict()[weight])
    stored, _, _, vision = expert("transformer_2", "fp8_e4m3fn", "block")
    assert isinstance(vision, ExecutionBlocker)  # Wan 2.2 A14B has no image encoder
    assert stored.offload == "block" and stored.handle.key != low.handle.key
    with stored.handle.use() as module:
        assert module.state_dict()[weight].dtype == torch.float8_e4m3fn


@pytest.fixture
def broken(tmp_path: Path, tiny_models_dir: Path, manager: ModelManager) -> tuple[NodeRunner, Path]:
    """A runner whose diffusers folder holds a copy of the T2V folder, to break."""
    models_dir = tmp_path / "weights"
    folder = models_dir / "diffusers" / T2V
    shutil.copytree(tiny_models_dir / "diffusers" / T2V, folder)
    services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(models_dir)}
    return NodeRunner(Folders.under(tmp_path), services=services), folder


def _sharded(folder: Path) -> None:
    """Split the transformer's weights into two shards with an index, as the large releases are saved."""
    component = folder / "transformer"
    single = component / "diffusion_pytorch_model.safetensors"
    tensors = load_file(single)
    names = sorted(tensors)
    shards = {f"diffusion_pytorch_model-0000{n}-of-00002.safetensors": names[n - 1 :: 2] for n in (1, 2)}
    for shard, keys in shards.items():
        save_file({key: tensors[key] for key in keys}, component / shard)
    weight_map = {key: shard for shard, keys in shards.items() for key in keys}
    (single.parent / f"{single.name}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    single.unlink()


def _missing_shard(folder: Path) -> None:
    _sharded(folder)
    (folder / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()


def _no_index(folder: Path) -> None:
    (folder / "model_index.json").unlink()


def _no_vae(folder: Path) -> None:
    shutil.rmtree(folder / "vae")


def _flux(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))


def _more_layers(folder: Path) -> None:
    config = json.loads((folder / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps({**config, "num_layers": 3}))


def _truncated(folder: Path) -> None:
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])


def _no_text_weights(folder: Path) -> None:
    (folder / "text_encoder" / "model.safetensors").unlink()


def _pickled_vae(folder: Path) -> None:
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), weights.with_suffix(".bin"))
    weights.unlink()


@pytest.mark.parametrize(
    ("damage", "reason", "cause"),
    [
        (_no_index, "not a diffusers pipeline folder: it has no model_index.json", ModelLoadError),
        (_no_vae, "vae/ is missing (model_index.json lists it)", CorruptModelFileError),
        (_flux, "model_index.json names 'FluxPipeline', not a pipeline Reelgraph reads", WrongModelKindError),
        (
            _truncated,
            "transformer/diffusion_pytorch_model.safetensors: not a valid safetensors file: truncated",
            CorruptModelFileError,
        ),
        (_no_text_weights, "text_encoder/model.safetensors is missing", CorruptModelFileError),
        (_more_layers, "transformer/ lacks 27 weights its config.json needs (blocks.2.", CorruptModelFileError),
        (
            _missing_shard,
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors is missing "
            "(diffusion_pytorch_model.safetensors.index.json lists it)",
            CorruptModelFileError,
        ),
        (_pickled_vae, "vae/ holds only pickled weights (diffusion_pytorch_model.bin)", UnsafeModelFileError),
    ],
)
def test_broken_folders_fail_naming_the_input_folder_and_reason(
    broken: tuple[NodeRunner, Path], damage: Callable[[Path], None], reason: str, cause: type[ModelLoadError]
) -> None:
    runner, folder = broken
    damage(folder)
    with pytest.raises(ValueError, match=f"^model_path: {re.escape(f'{T2V}: {reason}')}") as failure:
        runner.call(DiffusersPipelineLoader, model_path=T2V, transformer="transformer", weight_dtype="default")
    assert type(failure.value.__cause__) is cause


def test_sharded_weights_load_as_the_single_file(broken: tuple[NodeRunner, Path]) -> None:
    runner, folder = broken
    (single, *_) = _folder_models(runner, T2V)
    _sharded(folder)
    (sharded, *_) = _folder_models(runner, T2V)
    assert sharded.handle.key != single.handle.key
    with single.handle.use() as single_module, sharded.handle.use() as sharded_module:
        ours, theirs = sharded_module.state_dict(), single_module.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_a_folder_that_is_not_there_names_the_folders_searched(broken: tuple[NodeRunner, Path]) -> None:
    runner, _ = broken
    with pytest.raises(ValueError, match=r"^model_path: 'Wan2.1-T2V-14B-Diffusers' is not in the diffusers folder"):
        runner.call(DiffusersLoader, model_path="Wan2.1-T2V-14B-Diffusers")


def test_transformer_2_of_a_single_model_pipeline_is_refused(runner: NodeRunner) -> None:
    with pytest.raises(ValueError, match=f"^transformer: {T2V} has no 'transformer_2'"):
        runner.call(DiffusersPipelineLoader, model_path=T2V, transformer="transformer_2", weight_dtype="default")


def test_choices_list_the_pipeline_folders(tiny_models_dir: Path) -> None:
    bound = DiffusersPipelineLoader.bound_to_models(ModelFolders(tiny_models_dir))
    folders = [
        name.removeprefix(f"{DIFFUSERS_KEY}/") for name in tiny_stand_in_names() if name.startswith(DIFFUSERS_KEY)
    ]
    assert bound.INPUT_TYPES()["required"]["model_path"][0] == sorted(folders)
    assert {*TINY_WAN_PIPELINES, *TINY_FAMILY_PIPELINES} <= set(folders)


def test_a_missing_clip_vision_fails_the_output_using_it_with_a_message(
    tmp_path: Path, tiny_models_dir: Path, manager: ModelManager
) -> None:
    """Through the executor: a T2V folder's CLIP_VISION blocks the nodes it feeds, and the output node that
    depends on it fails with the loader's message."""
    folders, model_folders = Folders.under(tmp_path), ModelFolders(tiny_models_dir)
    registry = NodeRegistry()
    assert not register_builtin_nodes(registry, folders, model_folders).failures
    services = {FOLDERS_SERVICE: folders, MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: model_folders}
    loader = {"model_path": T2V, "transformer": "transformer", "weight_dtype": "default"}
    api = {
        "load": {"class_type": "DiffusersPipelineLoader", "inputs": loader},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["load", 1], "text": PROMPT}},
        "image": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1, "color": 0}},
        "vision": {
            "class_type": "CLIPVisionEncode",
            "inputs": {"clip_vision": ["load", 3], "image": ["image", 0], "crop": "center"},
        },
        "i2v": {
            "class_type": "WanImageToVideo",
            "inputs": {
                "positive": ["text", 0],
                "negative": ["text", 0],
                "vae": ["load", 2],
                "width": SIZE,
                "height": SIZE,
                "length": LENGTH,
                "batch_size": 1,
                "clip_vision_output": ["vision", 0],
                "start_image": ["image", 0],
            },
        },
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["i2v", 2], "vae": ["load", 2]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}},
    }
    validated = validate_prompt(Prompt.parse(api), registry)
    assert validated.ok, validated.node_errors
    result = asyncio.run(
        Executor(registry, LRUOutputCache(None), services=services).execute(validated.prompt, ["preview"])
    )
    assert result.status == "error" and result.error is not None and result.error.node_id == "preview"
    assert f"{T2V} has no image_encoder, so its CLIP_VISION output is empty" in result.error.exception_message
