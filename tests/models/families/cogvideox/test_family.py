"""The CogVideoX family through the generic pipeline-folder loaders: the tiny 2B-style, 1.5-style I2V and 2B Fun
control folders load as MODEL, CLIP and VAE with the releases' latent statistics and schedules; conditioning that
does not fit is refused before a step runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models.devices import DeviceProbe
from models.errors import CorruptModelFileError
from models.families.catalog import layout_for_pipeline, text_encoder_kind, transformer_family_of, vae_family_of
from models.families.cogvideox.adapter import IMAGE_LATENTS, CogVideoXAdapter
from models.families.cogvideox.family import COGVIDEOX_PIPELINES
from models.families.cogvideox.latents import CogVideoXLatentFormat, latent_format_from_config
from models.families.cogvideox.spec import cogvideox_spec_from_config
from models.memory import MemoryConfig, ModelManager
from models.pipeline_folder import (
    load_pipeline_text_encoder,
    load_pipeline_transformer,
    load_pipeline_vae,
    read_pipeline_folder,
)
from models.sampling.model_sampling import ZeroSnrSampling

TEXT = torch.zeros(1, 226, 32)


@pytest.fixture(scope="module")
def manager() -> Iterator[ModelManager]:
    manager = ModelManager(MemoryConfig(mode="cpu"), DeviceProbe())
    yield manager
    manager.free()


def _folder(tiny_models_dir: Path, name: str):
    return read_pipeline_folder(tiny_models_dir / "diffusers" / name)


def test_both_pipelines_read_as_cogvideox_folders() -> None:
    assert layout_for_pipeline("CogVideoXPipeline") is COGVIDEOX_PIPELINES
    assert layout_for_pipeline("CogVideoXImageToVideoPipeline") is COGVIDEOX_PIPELINES
    assert layout_for_pipeline("CogVideoXFunControlPipeline") is COGVIDEOX_PIPELINES
    assert text_encoder_kind("cogvideox").parts[0].diffusers_classes == ("T5EncoderModel",)


def test_2b_folder_loads_with_its_release_settings(tiny_models_dir: Path, manager: ModelManager) -> None:
    folder = _folder(tiny_models_dir, "CogVideoX-2b")
    model = load_pipeline_transformer(manager, folder)
    assert isinstance(model.adapter, CogVideoXAdapter)
    assert model.adapter.describe() == "CogVideoX 1.0 t2v, dim 32, 2 layers"
    assert model.sampling == ZeroSnrSampling(snr_shift_scale=3.0)
    assert model.adapter.latent_format.std[0] == pytest.approx(1 / 1.15258426)
    assert model.adapter.padding_frames(13) == 0
    vae = load_pipeline_vae(manager, folder)
    assert isinstance(vae.latent_format, CogVideoXLatentFormat)
    assert (vae.latent_format.spatial_ratio, vae.latent_format.temporal_ratio) == (8, 4)
    assert vae.latent_format.image_scale == pytest.approx(1.15258426)
    clip = load_pipeline_text_encoder(manager, folder)
    assert clip.kind.name == "cogvideox"


def test_15_i2v_folder_loads_with_its_release_settings(tiny_models_dir: Path, manager: ModelManager) -> None:
    folder = _folder(tiny_models_dir, "CogVideoX1.5-5B-I2V")
    model = load_pipeline_transformer(manager, folder)
    adapter = model.adapter
    assert adapter.describe() == "CogVideoX 1.5 i2v, dim 32, 2 layers"
    assert model.sampling == ZeroSnrSampling(snr_shift_scale=1.0)
    assert adapter.latent_format.std[0] == pytest.approx(1 / 0.7)
    assert [adapter.padding_frames(frames) for frames in (3, 4, 21)] == [1, 0, 1]
    vae = load_pipeline_vae(manager, folder)
    assert vae.latent_format.image_scale == pytest.approx(1 / 0.7)  # invert_scale_latents


def test_fun_control_folder_loads_as_a_2b_control_model(tiny_models_dir: Path, manager: ModelManager) -> None:
    model = load_pipeline_transformer(manager, _folder(tiny_models_dir, "CogVideoX-Fun-V1.1-2b-Control"))
    spec = model.adapter.spec
    assert (spec.control, spec.image_to_video, spec.latent_channels) == (True, False, 16)
    assert model.adapter.describe() == "CogVideoX 1.0 control, dim 32, 2 layers"
    assert model.sampling == ZeroSnrSampling(snr_shift_scale=3.0)
    assert model.adapter.latent_format.std[0] == pytest.approx(1 / 1.15258426)


@pytest.mark.parametrize(
    ("marks", "kind"),
    [({}, "control"), ({"use_learned_positional_embeddings": True}, "i2v"), ({"ofs_embed_dim": 512}, "i2v")],
)
def test_doubled_inputs_are_control_unless_image_to_video_marked(marks: dict[str, object], kind: str) -> None:
    config = {"in_channels": 32, "out_channels": 16, "use_rotary_positional_embeddings": True, **marks}
    assert cogvideox_spec_from_config(config).kind == kind
    assert cogvideox_spec_from_config({"in_channels": 16}).kind == "t2v"


def test_single_files_never_route_to_cogvideox(tiny_models_dir: Path) -> None:
    from safetensors import safe_open

    path = tiny_models_dir / "diffusers/CogVideoX-2b/transformer/diffusion_pytorch_model.safetensors"
    with safe_open(path, "pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    assert transformer_family_of(tensors) is None or transformer_family_of(tensors).name != "cogvideox"
    assert vae_family_of(tensors) is None or vae_family_of(tensors).name != "cogvideox"


def test_latent_format_from_a_release_config() -> None:
    fmt = latent_format_from_config({"scaling_factor": 0.7, "invert_scale_latents": False})
    assert fmt.channels == 16 and fmt.mean == (0.0,) * 16 and fmt.image_scale == 0.7
    with pytest.raises(ValueError, match="scaling_factor"):
        latent_format_from_config({"scaling_factor": 0.0})


def _adapters(tiny_models_dir: Path, manager: ModelManager) -> tuple[CogVideoXAdapter, CogVideoXAdapter]:
    t2v = load_pipeline_transformer(manager, _folder(tiny_models_dir, "CogVideoX-2b")).adapter
    i2v = load_pipeline_transformer(manager, _folder(tiny_models_dir, "CogVideoX1.5-5B-I2V")).adapter
    return t2v, i2v


def test_conditioning_that_does_not_fit_is_refused(tiny_models_dir: Path, manager: ModelManager) -> None:
    t2v, i2v = _adapters(tiny_models_dir, manager)
    latent = torch.zeros(1, 16, 4, 8, 8)
    image = {IMAGE_LATENTS: torch.zeros(1, 16, 4, 8, 8)}
    t2v.check_conditioning((TEXT, {}), latent)
    i2v.check_conditioning((TEXT, image), latent)
    with pytest.raises(ValueError, match="text-to-video model; it takes no start image"):
        t2v.check_conditioning((TEXT, image), latent)
    with pytest.raises(ValueError, match="CogVideoXImageToVideo"):
        i2v.check_conditioning((TEXT, {}), latent)
    with pytest.raises(ValueError, match="needs a multiple of 2"):
        i2v.check_conditioning((TEXT, {IMAGE_LATENTS: torch.zeros(1, 16, 3, 8, 8)}), torch.zeros(1, 16, 3, 8, 8))
    with pytest.raises(ValueError, match="start image latents have shape"):
        i2v.check_conditioning((TEXT, {IMAGE_LATENTS: torch.zeros(1, 16, 2, 8, 8)}), latent)
    with pytest.raises(ValueError, match="exactly 226"):
        t2v.check_conditioning((torch.zeros(1, 128, 32), {}), latent)
    with pytest.raises(ValueError, match="T5 embeddings"):
        t2v.check_conditioning((torch.zeros(1, 226, 64), {}), latent)
    with pytest.raises(ValueError, match="multiples of 16"):
        t2v.check_conditioning((TEXT, {}), torch.zeros(1, 16, 4, 9, 8))


def _copy_with_scheduler(tiny_models_dir: Path, tmp_path: Path, changes: dict[str, object]) -> Path:
    """A copy of the tiny 2B folder whose scheduler config has ``changes``."""
    folder = tmp_path / "CogVideoX-2b"
    shutil.copytree(tiny_models_dir / "diffusers" / "CogVideoX-2b", folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, **changes}))
    return folder


def test_the_folders_scheduler_config_sets_the_sampling(
    tiny_models_dir: Path, tmp_path: Path, manager: ModelManager
) -> None:
    folder = _copy_with_scheduler(tiny_models_dir, tmp_path, {"snr_shift_scale": 2.0})
    model = load_pipeline_transformer(manager, read_pipeline_folder(folder))
    assert isinstance(model.sampling, ZeroSnrSampling)
    assert model.sampling.snr_shift_scale == 2.0


def test_a_scheduler_config_reelgraph_cannot_sample_is_refused(
    tiny_models_dir: Path, tmp_path: Path, manager: ModelManager
) -> None:
    folder = _copy_with_scheduler(tiny_models_dir, tmp_path, {"_class_name": "EulerDiscreteScheduler"})
    with pytest.raises(CorruptModelFileError, match=r"scheduler_config.json: scheduler 'EulerDiscreteScheduler'"):
        load_pipeline_transformer(manager, read_pipeline_folder(folder))
