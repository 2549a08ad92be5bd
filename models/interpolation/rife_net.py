"""RIFE's IFNet (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022), v4.x,
built for any ``RifeLayout``; its parameter names are those of the released checkpoints, so they load as they are.

For a time ``t`` the network estimates the flows from the frame at ``t`` back to both frames and a fusion mask,
coarse to fine: the first block sees both frames (and their encoded features, v4.7+) and ``t`` at 1/8 (1/16 with five
blocks) of the resolution; every later block sees both frames warped by the flow so far, ``t``, the mask and the flow
at twice the previous resolution and adds a flow update. The frame is ``mask * warp(I0) + (1 - mask) * warp(I1)`` with
the mask through a sigmoid. ``scale_factor`` scales every block's resolution (0.5 estimates the flow on half-size
frames: faster on 4K; 2 on doubled frames: finer for small frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.interpolation.rife_layout import (
    FLOW_CHANNELS,
    FRAME_CHANNELS,
    LARGE_MOTION,
    MASK_CHANNELS,
    BlockLayout,
    EncoderLayout,
    RifeLayout,
)
from models.interpolation.warp import backward_warp

__all__ = ["IFNet"]

LEAKY_SLOPE = 0.2


class ResidualConv(nn.Module):
    """A 3x3 convolution added back to its input with a learned per-channel gain (``beta``), then LeakyReLU."""

    def __init__(self, width: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones(1, width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, LEAKY_SLOPE)


def _activated_conv(in_channels: int, out_channels: int, stride: int, prelu: bool) -> nn.Sequential:
    activation = nn.PReLU(out_channels) if prelu else nn.LeakyReLU(LEAKY_SLOPE)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), activation)


class FlowBlock(nn.Module):
    """One IFBlock: at ``1 / scale`` of the frames' resolution, input channels to a flow update (pixels of the full
    resolution), a mask update and the channels it hands to the next block."""

    def __init__(self, layout: BlockLayout, carried_channels: int) -> None:
        super().__init__()
        self.layout = layout
        self.carried_channels = carried_channels
        self.conv0 = nn.Sequential(
            _activated_conv(layout.in_channels, layout.width // 2, 2, layout.prelu),
            _activated_conv(layout.width // 2, layout.width, 2, layout.prelu),
        )
        if layout.residual_layers:
            layers: list[nn.Module] = [ResidualConv(layout.width, layout.groups) for _ in range(layout.depth)]
        else:
            layers = [_activated_conv(layout.width, layout.width, 1, layout.prelu) for _ in range(layout.depth)]
        self.convblock = nn.Sequential(*layers)
        if layout.shuffled:
            self.lastconv: nn.Module = nn.Sequential(
                nn.ConvTranspose2d(layout.width, 4 * layout.out_channels, 4, 2, 1), nn.PixelShuffle(2)
            )
        else:
            self.lastconv = nn.ConvTranspose2d(layout.width, layout.out_channels, 4, 2, 1)

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if flow is not None:
            x = torch.cat((x, flow / scale), dim=1)
        x = _resize(x, 1.0 / scale)
        features = self.conv0(x)
        stack = self.convblock(features)
        if self.layout.skip_around_stack:
            stack = stack + features
        up = scale if self.layout.shuffled else 2.0 * scale  # a bare lastconv ends at half the block's resolution
        out = _resize(self.lastconv(stack), up)
        flow_update = out[:, :FLOW_CHANNELS] * up
        mask_update = out[:, FLOW_CHANNELS : FLOW_CHANNELS + MASK_CHANNELS]
        start = FLOW_CHANNELS + MASK_CHANNELS
        return flow_update, mask_update, out[:, start : start + self.carried_channels]


class FeatureEncoder(nn.Module):
    """v4.7+'s per-frame feature encoder, its layers registered under the checkpoint's names."""

    def __init__(self, layout: EncoderLayout) -> None:
        super().__init__()
        self.layout = layout
        last = len(layout.names) - 1
        for index, (name, (in_channels, out_channels)) in enumerate(zip(layout.names, layout.channels, strict=True)):
            if index == last:
                layer: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)
            else:
                layer = nn.Conv2d(in_channels, out_channels, 3, 2 if index == 0 else 1, 1)
            self.add_module(name, layer)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames
        for index, name in enumerate(self.layout.names):
            if index and self.layout.activated:
                x = F.leaky_relu(x, LEAKY_SLOPE)
            x = getattr(self, name)(x)
        return x


class IFNet(nn.Module):
    """RIFE v4.x: ``forward(first, second, times, scale_factor, ensemble)`` gives the frames at ``times`` between the
    frames.

    ``first`` / ``second``: ``[N, 3, H, W]`` RGB in 0..1, sides multiples of ``layout.pad_multiple(scale_factor)``;
    ``times``: ``[N]`` in (0, 1). Returns ``[N, 3, H, W]``. With ``ensemble`` every block also runs on the swapped
    pair at ``1 - t`` and the two estimates are averaged (smoother where the flow is uncertain, twice the work).
    """

    def __init__(self, layout: RifeLayout) -> None:
        super().__init__()
        self.layout = layout
        for index, block in enumerate(layout.blocks):
            self.add_module(f"block{index}", FlowBlock(block, layout.carried_channels))
        if layout.encoder is not None:
            self.encode = FeatureEncoder(layout.encoder)

    def forward(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        times: torch.Tensor,
        scale_factor: float = 1.0,
        ensemble: bool = False,
    ) -> torch.Tensor:
        if ensemble:
            self.layout.check_ensemble("IFNet")
        frames = torch.cat((first, second), dim=0)  # both frames warp in one batch: [2N, ...]
        sources = frames if self.layout.encoder is None else torch.cat((frames, self.encode(frames)), dim=1)
        return self._estimate(frames, sources, times, scale_factor, ensemble, self.layout.reestimates_large_motion)

    def _estimate(
        self,
        frames: torch.Tensor,
        sources: torch.Tensor,
        times: torch.Tensor,
        scale_factor: float,
        ensemble: bool,
        reestimate: bool,
    ) -> torch.Tensor:
        """The blended frames of the pairs in ``frames`` (``[2N, 3, H, W]``: firsts, then seconds) and ``sources``
        (the frames with their features)."""
        batch, height, width = frames.shape[0] // 2, frames.shape[2], frames.shape[3]
        time = times.to(frames.dtype).view(batch, 1, 1, 1).expand(batch, 1, height, width)
        warped = sources
        flow = mask = carried = None
        blocks = [getattr(self, f"block{index}") for index in range(len(self.layout.blocks))]
        for index, block in enumerate(blocks):
            scale = self.layout.block_scales[index] / scale_factor
            if flow is None:
                flow, mask, carried = _run_block(block, warped, time, None, None, None, scale, ensemble)
            else:
                flow_update, mask_update, carried = _run_block(
                    block, warped, time, flow, mask, carried, scale, ensemble
                )
                if reestimate and index == 1:
                    large = _large_motion(flow_update)
                    if large.any():
                        return self._reestimated(frames, sources, times, scale_factor, ensemble, large)
                flow = flow + flow_update
                mask = mask + mask_update if self.layout.accumulates_mask else mask_update
            both_flows = torch.cat((flow[:, :2], flow[:, 2:FLOW_CHANNELS]), dim=0)
            warped = backward_warp(frames if index == len(blocks) - 1 else sources, both_flows)
        assert mask is not None
        weight = torch.sigmoid(mask)
        return warped[:batch] * weight + warped[batch:] * (1 - weight)

    def _reestimated(
        self,
        frames: torch.Tensor,
        sources: torch.Tensor,
        times: torch.Tensor,
        scale_factor: float,
        ensemble: bool,
        large: torch.Tensor,
    ) -> torch.Tensor:
        """v4.0-4.1: the pairs flagged ``large`` estimated again from the start at twice the coarseness; the others
        as usual."""
        batch = times.shape[0]
        result = torch.empty_like(frames[:batch])
        for flagged, factor in ((large, scale_factor / 2), (~large, scale_factor)):
            if flagged.any():
                both = torch.cat((flagged, flagged))
                result[flagged] = self._estimate(frames[both], sources[both], times[flagged], factor, ensemble, False)
        return result


def _run_block(
    block: FlowBlock,
    warped: torch.Tensor,
    time: torch.Tensor,
    flow: torch.Tensor | None,
    mask: torch.Tensor | None,
    carried: torch.Tensor | None,
    scale: float,
    ensemble: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One block's flow, mask and carried features for the pairs in ``warped``; with ``ensemble``, averaged with its
    estimate for the swapped pairs at ``1 - t`` (both in one batched call)."""
    batch = time.shape[0]
    extra = [] if mask is None or carried is None else [mask, carried]
    inputs = torch.cat((_frame_pair(warped, batch), time, *extra), dim=1)
    if not ensemble:
        return block(inputs, flow, scale)
    swapped = torch.cat((warped[batch:], warped[:batch]), dim=0)
    reverse_extra = [] if mask is None else [-mask]
    reverse = torch.cat((_frame_pair(swapped, batch), 1 - time, *reverse_extra), dim=1)
    flows = None if flow is None else torch.cat((flow, _swap_flows(flow)), dim=0)
    both_flow, both_mask, both_carried = block(torch.cat((inputs, reverse), dim=0), flows, scale)
    averaged_flow = (both_flow[:batch] + _swap_flows(both_flow[batch:])) / 2
    averaged_mask = (both_mask[:batch] - both_mask[batch:]) / 2
    return averaged_flow, averaged_mask, both_carried[:batch]


def _swap_flows(flow: torch.Tensor) -> torch.Tensor:
    """Flows towards (frame 0, frame 1) as flows towards (frame 1, frame 0)."""
    return torch.cat((flow[:, 2:FLOW_CHANNELS], flow[:, :2]), dim=1)


def _large_motion(flow_update: torch.Tensor) -> torch.Tensor:
    """``[N]``: whether a pair's update moves both frames more than ``LARGE_MOTION`` pixels somewhere."""
    towards_first = flow_update[:, :2].abs().flatten(1).amax(dim=1)
    towards_second = flow_update[:, 2:FLOW_CHANNELS].abs().flatten(1).amax(dim=1)
    return (towards_first > LARGE_MOTION) & (towards_second > LARGE_MOTION)


def _frame_pair(warped: torch.Tensor, batch: int) -> torch.Tensor:
    """Both frames' RGB, then both frames' features: the channel order blocks take."""
    first, second = warped[:batch], warped[batch:]
    return torch.cat(
        (first[:, :FRAME_CHANNELS], second[:, :FRAME_CHANNELS], first[:, FRAME_CHANNELS:], second[:, FRAME_CHANNELS:]),
        dim=1,
    )


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1.0:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
