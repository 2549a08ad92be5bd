"""What a RIFE v4.x checkpoint holds, read from its tensors' names and shapes.

RIFE's IFNet is a coarse-to-fine stack of IFBlocks (``block0``, ``block1``, ...). Each block downsamples its input by
4 with two strided convolutions (``conv0``), runs a stack of same-width convolutions (``convblock``) and upsamples
with a transposed convolution (``lastconv``) to a flow update (4 channels: towards frame 0 and towards frame 1), a
fusion-mask update (1 channel) and, from v4.22, features it hands to the next block. The released checkpoints differ
in ways their tensors show, so the version family is read from them rather than from a file name:

- v4.0-4.1: PReLU activations (``conv0.0.1.weight``), plain ``convblock`` convolutions with a skip around the stack,
  ``lastconv`` a bare transposed convolution to 5 channels at half the block's input resolution;
- v4.2-4.4: the same with LeakyReLU and no skip; v4.0-4.4 also hold a refinement U-Net (``contextnet``/``unet``) that
  their fast mode skips and that is not loaded here;
- v4.5-4.6: residual ``convblock`` layers (``convblock.N.conv`` and a per-channel ``beta``) and ``lastconv`` a
  transposed convolution plus pixel shuffle, at the block's input resolution;
- v4.7 and later: a feature encoder (``encode.*``) whose features of both frames are warped along with them and fed to
  every block; the mask is then replaced, not accumulated, from block to block;
- v4.22 and later: blocks hand extra ``lastconv`` channels to the next block; v4.25 and later have five blocks
  (v4.25-lite's last one is 24 wide and jumps from 1/4 to the full resolution);
- lite releases have narrower blocks, and v4.14-lite's residual layers convolve in two channel groups.

Keys may carry the ``module.`` prefix of a ``DataParallel`` training run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import torch

from models.errors import StateDictError

__all__ = [
    "LARGE_MOTION",
    "MODULE_PREFIX",
    "BlockLayout",
    "EncoderLayout",
    "RifeLayout",
    "is_rife_state_dict",
    "read_rife_layout",
    "residual_layout",
    "rife_tensors",
]

MODULE_PREFIX = "module."
RIFE_MARKER = "block0.conv0.0.0.weight"
ENCODER_PREFIX = "encode."
FLOW_CHANNELS = 4
LARGE_MOTION = 32
LITE_425_LAST_WIDTH = 24
"""Pixels of flow update (in both directions) past which v4.0-4.1 re-estimate at twice the coarseness."""
MASK_CHANNELS = 1
FRAME_CHANNELS = 3
TIME_CHANNELS = 1
_INDEX = re.compile(r"^(\d+)\.")
_HEAD_LAYER = re.compile(r"^cnn(\d+)\.weight$")
_SEQUENTIAL_LAYER = re.compile(r"^(\d+)\.weight$")


@dataclass(frozen=True)
class BlockLayout:
    """One IFBlock.

    Attributes:
        in_channels: channels of the block's input (frames, features, time, mask, carried features, flow).
        width: channels of its ``convblock`` stack (``conv0`` goes through ``width // 2``).
        prelu: PReLU activations (v4.0-4.1) instead of LeakyReLU(0.2).
        residual_layers: ``convblock`` layers are residual (``conv`` + ``beta``) rather than plain convolutions.
        depth: layers in ``convblock``.
        out_channels: channels ``lastconv`` gives (flow, mask, then features for the next block or unused ones).
        shuffled: ``lastconv`` is a transposed convolution and a pixel shuffle, back at the block's input
            resolution; otherwise a bare transposed convolution at half of it.
        groups: channel groups of the residual ``convblock`` convolutions (2 in v4.14-lite).
    """

    in_channels: int
    width: int
    prelu: bool
    residual_layers: bool
    depth: int
    out_channels: int
    shuffled: bool
    groups: int = 1

    @property
    def skip_around_stack(self) -> bool:
        """v4.0-4.1 add the ``convblock`` input back to its output."""
        return self.prelu


@dataclass(frozen=True)
class EncoderLayout:
    """The feature encoder of v4.7 and later: 3x3 convolutions (the first with stride 2) and a final 4x4 transposed
    convolution with stride 2, back at the frame's resolution.

    Attributes:
        names: the layers' names under ``encode.`` (``cnn0``.. in the ``Head`` layout, ``0``, ``2``.. or ``0``, ``1``
            in the ``nn.Sequential`` layouts).
        channels: each layer's (input, output) channels.
        activated: LeakyReLU(0.2) between layers (every layout except v4.7's two-layer one).
    """

    names: tuple[str, ...]
    channels: tuple[tuple[int, int], ...]
    activated: bool

    @property
    def feature_channels(self) -> int:
        return self.channels[-1][1]


@dataclass(frozen=True)
class RifeLayout:
    """An IFNet: its blocks (coarse to fine), its feature encoder (v4.7+) and the features blocks hand on (v4.22+)."""

    blocks: tuple[BlockLayout, ...]
    encoder: EncoderLayout | None
    carried_channels: int

    @property
    def feature_channels(self) -> int:
        return 0 if self.encoder is None else self.encoder.feature_channels

    @property
    def accumulates_mask(self) -> bool:
        """Before the feature encoder (v4.0-4.6) each block adds to the mask; later blocks replace it."""
        return self.encoder is None

    @property
    def block_scales(self) -> tuple[int, ...]:
        """How much each block downsamples the frames (before ``conv0``'s 4): 8, 4, 2, 1 for four blocks; 16 .. 1 for
        five; 32, 16, 8, 4, 1 for v4.25-lite, whose last block (24 wide) jumps from 1/4 to full resolution."""
        if self.lite_425:
            return (32, 16, 8, 4, 1)
        return tuple(2 ** (len(self.blocks) - 1 - index) for index in range(len(self.blocks)))

    @property
    def coarsest_scale(self) -> int:
        """How much the first block downsamples."""
        return self.block_scales[0]

    @property
    def lite_425(self) -> bool:
        """v4.25-lite: five blocks, the last ``LITE_425_LAST_WIDTH`` wide (v4.25's and v4.26's is 32); its block
        scales are not those of the others, and its tensors show it only by that width."""
        return len(self.blocks) == 5 and self.blocks[-1].width == LITE_425_LAST_WIDTH

    @property
    def reestimates_large_motion(self) -> bool:
        """v4.0-4.1 start again at twice the coarseness when the second block's update moves both frames more than
        ``LARGE_MOTION`` pixels."""
        return self.blocks[0].prelu

    @property
    def supports_ensemble(self) -> bool:
        """Ensemble mode (also estimating from the swapped pair) is defined for v4.2-4.21: not where blocks hand
        features on (v4.22+) nor where large motion is re-estimated (v4.0-4.1)."""
        return not self.carried_channels and not self.reestimates_large_motion

    def check_ensemble(self, name: str) -> None:
        """``ValueError`` naming ``name`` unless this release has an ensemble mode."""
        if not self.supports_ensemble:
            raise ValueError(
                f"{name}: RIFE {self.version()} has no ensemble mode (v4.2 to v4.21 have it); turn ensemble off"
            )

    def pad_multiple(self, scale_factor: float) -> int:
        """The multiple frame sides need so every block's downsampling (``block_scales / scale_factor``, then 4
        in ``conv0``) divides them; twice that where large motion is re-estimated at twice the coarseness."""
        side = 4 * self.coarsest_scale * (2 if self.reestimates_large_motion else 1)
        return max(side, round(side / scale_factor))

    def version(self) -> str:
        """The release family these tensors come from (``"4.6"``, ``"4.7-4.9"``, ...)."""
        first = self.blocks[0]
        if self.encoder is None:
            if first.prelu:
                return "4.0-4.1"
            if not first.residual_layers:
                return "4.2-4.4"
            return "4.5" if first.out_channels == FLOW_CHANNELS + MASK_CHANNELS else "4.6"
        if self.lite_425:
            return "4.25-lite"
        if len(self.blocks) > 4:
            return "4.25+"
        if self.carried_channels:
            return "4.22+"
        if len(self.encoder.names) == 2:
            return "4.7-4.9"
        return "4.10-4.21"


def rife_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` without a ``module.`` prefix (when every key has it)."""
    if state_dict and all(key.startswith(MODULE_PREFIX) for key in state_dict):
        return {key[len(MODULE_PREFIX) :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def is_rife_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors (prefixed or not) are a RIFE IFNet's."""
    return RIFE_MARKER in state_dict or MODULE_PREFIX + RIFE_MARKER in state_dict


def read_rife_layout(tensors: Mapping[str, torch.Tensor]) -> RifeLayout:
    """The IFNet layout of unprefixed RIFE tensors (real or meta); ``StateDictError`` when they do not form one."""
    count = 0
    while f"block{count}.conv0.0.0.weight" in tensors:
        count += 1
    if count < 2:
        raise StateDictError(f"a RIFE IFNet needs at least two blocks with {RIFE_MARKER}; found {count}")
    blocks = tuple(_read_block(tensors, f"block{index}.") for index in range(count))
    encoder = _read_encoder({k[len(ENCODER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(ENCODER_PREFIX)})
    layout = RifeLayout(blocks, encoder, _carried_channels(blocks, encoder))
    _check_channels(layout)
    return layout


def _read_block(tensors: Mapping[str, torch.Tensor], prefix: str) -> BlockLayout:
    first = _shape(tensors, prefix + "conv0.0.0.weight")
    second = _shape(tensors, prefix + "conv0.1.0.weight")
    in_channels, width = first[1], second[0]
    if first[0] != width // 2 or second[1] != first[0]:
        raise StateDictError(f"{prefix}conv0 is {tuple(first)} then {tuple(second)}, not in -> width/2 -> width")
    stack = prefix + "convblock."
    layers = sorted({int(m.group(1)) for k in tensors if k.startswith(stack) and (m := _INDEX.match(k[len(stack) :]))})
    if layers != list(range(len(layers))) or not layers:
        raise StateDictError(f"{prefix}convblock has layers {layers}, not 0..N-1")
    residual = f"{prefix}convblock.0.conv.weight" in tensors
    groups = _groups(_shape(tensors, f"{prefix}convblock.0.conv.weight"), width) if residual else 1
    for layer in layers:
        name = f"{prefix}convblock.{layer}.conv.weight" if residual else f"{prefix}convblock.{layer}.0.weight"
        if tuple(_shape(tensors, name)) != (width, width // groups, 3, 3):
            raise StateDictError(
                f"{name} should be ({width}, {width // groups}, 3, 3), is {tuple(tensors[name].shape)}"
            )
    shuffled = prefix + "lastconv.0.weight" in tensors
    last = _shape(tensors, prefix + ("lastconv.0.weight" if shuffled else "lastconv.weight"))
    out_channels = last[1] // 4 if shuffled else last[1]
    if last[0] != width or out_channels < FLOW_CHANNELS + MASK_CHANNELS:
        raise StateDictError(f"{prefix}lastconv {tuple(last)} does not turn {width} channels into flow and mask")
    return BlockLayout(
        in_channels=in_channels,
        width=width,
        prelu=prefix + "conv0.0.1.weight" in tensors,
        residual_layers=residual,
        depth=len(layers),
        out_channels=out_channels,
        shuffled=shuffled,
        groups=groups,
    )


def _groups(shape: torch.Size, width: int) -> int:
    """The channel groups of a ``width``-channel convolution whose weight is ``shape`` (1 when it does not divide)."""
    return width // shape[1] if len(shape) == 4 and shape[1] and width % shape[1] == 0 else 1


def _read_encoder(tensors: Mapping[str, torch.Tensor]) -> EncoderLayout | None:
    if not tensors:
        return None
    head = {int(m.group(1)): f"cnn{m.group(1)}" for key in tensors if (m := _HEAD_LAYER.match(key))}
    sequential = {int(m.group(1)): m.group(1) for key in tensors if (m := _SEQUENTIAL_LAYER.match(key))}
    found = head or sequential
    if not found or (head and sequential):
        raise StateDictError(f"encode.* is no RIFE feature encoder layout: {sorted(tensors)[:4]}")
    order = sorted(found)
    names = tuple(found[index] for index in order)
    shapes = [tuple(tensors[f"{name}.weight"].shape) for name in names]
    convolutions, final = shapes[:-1], shapes[-1]
    channels = (*((shape[1], shape[0]) for shape in convolutions), (final[0], final[1]))
    if any(shape[2:] != (3, 3) for shape in convolutions) or final[2:] != (4, 4) or channels[0][0] != FRAME_CHANNELS:
        raise StateDictError(f"encode.* layers {shapes} are not 3x3 convolutions from RGB then a 4x4 transposed one")
    if any(before[1] != after[0] for before, after in pairwise(channels)):
        raise StateDictError(f"encode.* layers {shapes} do not chain")
    consecutive = order == list(range(order[0], order[0] + len(order)))
    return EncoderLayout(names=names, channels=channels, activated=bool(head) or not consecutive)


def _carried_channels(blocks: tuple[BlockLayout, ...], encoder: EncoderLayout | None) -> int:
    """Channels each later block gets from the one before, from what its input holds besides the rest."""
    features = 0 if encoder is None else encoder.feature_channels
    return blocks[1].in_channels - _later_block_inputs(features)


def _later_block_inputs(features: int) -> int:
    """Warped frames and features, time, mask and flow: a later block's input without carried features."""
    return 2 * (FRAME_CHANNELS + features) + TIME_CHANNELS + MASK_CHANNELS + FLOW_CHANNELS


def _check_channels(layout: RifeLayout) -> None:
    features, carried = layout.feature_channels, layout.carried_channels
    first = 2 * (FRAME_CHANNELS + features) + TIME_CHANNELS
    if layout.blocks[0].in_channels != first:
        raise StateDictError(
            f"block0 takes {layout.blocks[0].in_channels} channels; two frames with {features} feature channels "
            f"each and the time make {first}"
        )
    later = _later_block_inputs(features) + carried
    for index, block in enumerate(layout.blocks[1:], start=1):
        if block.in_channels != later:
            raise StateDictError(f"block{index} takes {block.in_channels} channels, block1 {later}")
    handed = min(block.out_channels for block in layout.blocks[:-1]) - FLOW_CHANNELS - MASK_CHANNELS
    if carried < 0 or carried > handed:
        raise StateDictError(f"later blocks take {carried} carried channels; earlier blocks give {handed}")


def _shape(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Size:
    tensor = tensors.get(name)
    if tensor is None:
        raise StateDictError(f"missing {name}")
    return tensor.shape


def residual_layout(
    widths: tuple[int, ...],
    in_channels: tuple[int, int],
    out_channels: int,
    encoder: EncoderLayout | None = None,
    carried: int = 0,
    depth: int = 8,
) -> RifeLayout:
    """A v4.2+-style layout (LeakyReLU, residual layers, pixel-shuffled ``lastconv``): one block per width, the first
    taking ``in_channels[0]`` channels and the rest ``in_channels[1]``; for building networks, not reading them."""
    blocks = tuple(
        BlockLayout(
            in_channels=in_channels[0] if index == 0 else in_channels[1],
            width=width,
            prelu=False,
            residual_layers=True,
            depth=depth,
            out_channels=out_channels,
            shuffled=True,
        )
        for index, width in enumerate(widths)
    )
    return RifeLayout(blocks, encoder, carried)
