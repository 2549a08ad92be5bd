"""Tiny random-weight stand-ins of released upscale models (``upscale_models/``), built with spandrel's own
architecture classes and saved in the releases' layouts, so the loader detects them exactly as it detects the real
files:

- ``RealESRGAN_x4plus.pth``: ESRGAN in the new (basicsr ``RRDBNet``) key names, wrapped in ``{"params_ema": ...}``.
- ``RealESRGAN_x2plus.pth``: the same with the 2x pixel-unshuffle input (12 input channels), so sides must be
  multiples of 4.
- ``4x-UltraSharp.pth``: ESRGAN in the old key names (``model.0.weight``, ``model.1.sub.0.RDB1...``), bare.
- ``realesr-general-x4v3.pth``: Real-ESRGAN Compact (``SRVGGNetCompact``), wrapped in ``{"params": ...}``.
- ``4x-ClearRealityV1.pth`` and ``4x-ClearRealityV1.safetensors``: SPAN, bare, the same weights in both formats.
- ``001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth``: SwinIR (window 4, one stage), wrapped in ``{"params": ...}``.

Each is narrow and shallow (8 or 12 features, one block), so a 64x64 frame upscales in milliseconds on a CPU.
Weights are PyTorch's default initialisation under a seeded, forked RNG (the global RNG is left as it was).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import torch
from safetensors.torch import save_file

from models.upscale.spandrel_import import import_spandrel

__all__ = ["TINY_UPSCALE_KINDS", "TINY_UPSCALE_NAMES", "UPSCALE_FOLDER", "write_tiny_upscale_models"]

UPSCALE_FOLDER = "upscale_models"
TINY_FEATURES = 8
LEAKY_SLOPE = 0.2  # ESRGAN's LeakyReLU
LAST_LAYER_GAIN = 0.05
ESRGAN_X4 = "RealESRGAN_x4plus.pth"
ESRGAN_X2 = "RealESRGAN_x2plus.pth"
ESRGAN_OLD = "4x-UltraSharp.pth"
COMPACT = "realesr-general-x4v3.pth"
SPAN_PTH = "4x-ClearRealityV1.pth"
SPAN_SAFETENSORS = "4x-ClearRealityV1.safetensors"
SWINIR = "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth"

# Old ESRGAN names -> the new (basicsr RRDBNet) names of the Real-ESRGAN releases (two 2x upsampling convs).
_NEW_ESRGAN_NAMES = (
    (r"^model\.0\.", "conv_first."),
    (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
    (r"^model\.1\.sub\.\d+\.", "conv_body."),
    (r"^model\.3\.", "conv_up1."),
    (r"^model\.6\.", "conv_up2."),
    (r"^model\.8\.", "conv_hr."),
    (r"^model\.10\.", "conv_last."),
)


def tiny_esrgan(in_channels: int, out_channels: int = 3, shuffle_factor: int | None = None) -> torch.nn.Module:
    """A tiny 4x ESRGAN (spandrel's class) with He-initialised convolutions and a last layer scaled to give outputs
    around 0.5 (with PyTorch's default initialisation a random ESRGAN outputs ~0 everywhere, which clamps to black and
    tests nothing)."""
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    module = ESRGAN(
        in_nc=in_channels,
        out_nc=out_channels,
        num_filters=TINY_FEATURES,
        num_blocks=1,
        scale=4,
        shuffle_factor=shuffle_factor,
    )
    convolutions = [layer for layer in module.modules() if isinstance(layer, torch.nn.Conv2d)]
    for layer in convolutions:
        torch.nn.init.kaiming_normal_(layer.weight, a=LEAKY_SLOPE)
        torch.nn.init.zeros_(layer.bias)
    convolutions[-1].weight.data.mul_(LAST_LAYER_GAIN)
    torch.nn.init.constant_(convolutions[-1].bias, 0.5)
    return module


def _compact() -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=TINY_FEATURES, num_conv=2, upscale=4)


def _span() -> torch.nn.Module:
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=TINY_FEATURES, upscale=4)


def _swinir() -> torch.nn.Module:
    from spandrel.architectures.SwinIR import SwinIR

    return SwinIR(
        img_size=16,
        embed_dim=12,
        depths=[2],
        num_heads=[2],
        window_size=4,
        mlp_ratio=2.0,
        upscale=2,
        img_range=1.0,
        upsampler="pixelshuffle",
        resi_connection="1conv",
    )


def _new_esrgan_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, tensor in state.items():
        for pattern, replacement in _NEW_ESRGAN_NAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                renamed[new_key] = tensor
                break
        else:
            raise KeyError(f"no new ESRGAN name for {key}")
    return renamed


def _seeded(build: Callable[[], torch.nn.Module], seed: int) -> dict[str, torch.Tensor]:
    """The state dict of ``build()`` initialised under ``seed``, without touching the global RNG."""
    import_spandrel()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build().eval()
    return {key: tensor.detach().clone().contiguous() for key, tensor in module.state_dict().items()}


TINY_UPSCALE_NAMES = (ESRGAN_X4, ESRGAN_X2, ESRGAN_OLD, COMPACT, SPAN_PTH, SPAN_SAFETENSORS, SWINIR)
"""The file names written into ``upscale_models/``."""

TINY_UPSCALE_KINDS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        ESRGAN_X4: ("ESRGAN", 4),
        ESRGAN_X2: ("ESRGAN", 2),
        ESRGAN_OLD: ("ESRGAN", 4),
        COMPACT: ("RealESRGAN Compact", 4),
        SPAN_PTH: ("SPAN", 4),
        SPAN_SAFETENSORS: ("SPAN", 4),
        SWINIR: ("SwinIR", 2),
    }
)
"""Each tiny file's spandrel architecture name and scale."""


def write_tiny_upscale_models(models_dir: Path, seed: int = 0) -> list[Path]:
    """Write the tiny upscale models into ``models_dir/upscale_models``; returns their paths."""
    folder = Path(models_dir) / UPSCALE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    span = _seeded(_span, seed + 4)
    contents: dict[str, object] = {
        ESRGAN_X4: {"params_ema": _new_esrgan_names(_seeded(lambda: tiny_esrgan(3), seed))},
        ESRGAN_X2: {"params_ema": _new_esrgan_names(_seeded(lambda: tiny_esrgan(12, shuffle_factor=2), seed + 1))},
        ESRGAN_OLD: _seeded(lambda: tiny_esrgan(3), seed + 2),
        COMPACT: {"params": _seeded(_compact, seed + 3)},
        SPAN_PTH: span,
        SWINIR: {"params": _seeded(_swinir, seed + 5)},
    }
    written = []
    for name, content in contents.items():
        torch.save(content, folder / name)
        written.append(folder / name)
    save_file(span, str(folder / SPAN_SAFETENSORS))
    written.append(folder / SPAN_SAFETENSORS)
    return sorted(written, key=lambda path: TINY_UPSCALE_NAMES.index(path.name))
