"""Choosing an offload policy: the weakest memory saving that fits, from the model's sizes and the free memory.

``choose_offload`` walks ``models.offload.POLICIES`` from ``resident`` down and returns an ``OffloadPlan`` with a
sentence saying why (logged, and shown in the loader node's output). ``offload_sizes`` measures the sizes it needs
from a module (a meta-device one works: only shapes are read) and ``estimate_activation_bytes`` gives a rough size
for a forward's working memory.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from models.offload import POLICIES, OffloadConfig

__all__ = [
    "ACTIVATION_KINDS",
    "MODE_POLICIES",
    "TRANSFORMER_ACTIVATION_FACTOR",
    "VAE_ACTIVATION_FACTOR",
    "OffloadPlan",
    "OffloadSizes",
    "choose_offload",
    "estimate_activation_bytes",
    "offload_sizes",
]

logger = logging.getLogger(__name__)

MB = 1 << 20  # "MB" in reasons, as ComfyUI's logs count them
ACTIVATION_KINDS = ("transformer", "vae_decode")
TRANSFORMER_ACTIVATION_FACTOR = 10
"""Hidden-state-sized tensors alive at once in a transformer block: input, norm, q, k, v, rotated q and k, attention
output, projection; the FFN's wider pair (2 x ffn_dim ~ 5-8 hidden) peaks at about the same."""
VAE_ACTIVATION_FACTOR = 4
"""Full-resolution feature maps alive at once in a VAE decoder's last stage: input, norm, conv output, residual."""
MODE_POLICIES = {"highvram": "resident", "lowvram": "block", "novram": "leaf"}
"""The policy each ``MemoryConfig.mode`` forces (``auto`` and ``cpu`` choose)."""


@dataclass(frozen=True)
class OffloadSizes:
    """What ``choose_offload`` needs to know about a model, in bytes.

    ``non_block_bytes`` is everything outside the block lists: with block offloading it stays on the device for the
    whole forward (an upper bound where diffusers splits it further, as in the Wan VAE).
    """

    weights_bytes: int
    largest_block_bytes: int
    non_block_bytes: int
    largest_leaf_bytes: int


@dataclass(frozen=True)
class OffloadPlan:
    """The chosen policy, why, and the numbers behind it (bytes; ``need`` is what the policy needs on the device).

    ``fits`` is False when even this policy is expected not to fit (the forward will likely run out of memory: the
    OOM retry then steps further, e.g. to tiling). ``use_stream`` is None where prefetching is left to the default.
    """

    policy: str
    reason: str
    numbers: dict[str, int]
    fits: bool = True
    use_stream: bool | None = None

    def config(self, disk_dir: Path | None = None) -> OffloadConfig:
        """The ``OffloadConfig`` for this plan; ``disk`` needs ``disk_dir``."""
        return OffloadConfig(self.policy, use_stream=self.use_stream, disk_dir=disk_dir)


def offload_sizes(module: torch.nn.Module) -> OffloadSizes:
    """Sizes as diffusers' group offloading will split ``module``: blocks are the items of its ``ModuleList`` and
    ``Sequential`` children (also inside the modules its class names in ``_group_offload_block_modules``), leaves
    its ``Linear``/``Conv``/``Embedding`` layers."""
    from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS

    weights = _nbytes(module)
    blocks = [_nbytes(block) for block in _blocks(module)]
    leaves = [_nbytes(layer) for layer in module.modules() if isinstance(layer, _GO_LC_SUPPORTED_PYTORCH_LAYERS)]
    return OffloadSizes(weights, max(blocks, default=0), weights - sum(blocks), max(leaves, default=0))


def choose_offload(
    weights_bytes: int,
    largest_block_bytes: int,
    activation_bytes: int,
    device_free_bytes: int,
    ram_free_bytes: int,
    has_cuda: bool,
    forced: str | None = None,
    *,
    non_block_bytes: int = 0,
    largest_leaf_bytes: int = 0,
    evictable_bytes: int = 0,
) -> OffloadPlan:
    """The weakest offload policy whose device memory need fits, or ``forced`` (``None``/``"auto"`` chooses).

    On CUDA, in order: ``resident`` if weights + activations fit ``device_free_bytes`` (free now, evicting nothing);
    ``model`` if they fit only with the ``evictable_bytes`` of idle models evicted too (it goes back to RAM after each
    use, so the next model finds the room); otherwise the weights must wait in RAM, and if ``ram_free_bytes`` cannot
    hold them, ``disk``; else ``block`` if non-block weights + two blocks (the next one prefetched) + activations fit,
    or one block without prefetching; else ``leaf`` (two leaves, prefetched). On a CPU the compute device is RAM, so
    offloading to RAM saves nothing: ``resident`` if it fits, else ``disk`` (``device_free_bytes`` is then the RAM
    the model may take; ``ram_free_bytes`` is not read).

    Args:
        weights_bytes / largest_block_bytes / non_block_bytes / largest_leaf_bytes: from ``offload_sizes``.
        activation_bytes: working memory of one forward (``estimate_activation_bytes``).
        device_free_bytes: device memory this model may take now (the manager's budget minus resident models).
        ram_free_bytes: RAM this model's weights may take while offloaded.
        evictable_bytes: device memory that evicting idle models would add.
        has_cuda: whether the compute device is a CUDA GPU.
        forced: a policy to use whatever fits (a ``MODE_POLICIES`` value, a node's choice); the reason still names the
            automatic choice, and ``fits`` says whether the forced one is expected to fit.
    """
    arguments = {
        "weights_bytes": weights_bytes,
        "largest_block_bytes": largest_block_bytes,
        "non_block_bytes": non_block_bytes,
        "largest_leaf_bytes": largest_leaf_bytes,
        "activation_bytes": activation_bytes,
        "device_free_bytes": device_free_bytes,
        "evictable_bytes": evictable_bytes,
        "ram_free_bytes": ram_free_bytes,
    }
    for name, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative number of bytes, got {value!r}")
    if largest_block_bytes + non_block_bytes > weights_bytes or largest_leaf_bytes > weights_bytes:
        raise ValueError(
            f"block sizes exceed the weights: largest block {largest_block_bytes} + non-block {non_block_bytes}, "
            f"largest leaf {largest_leaf_bytes}, weights {weights_bytes} bytes"
        )
    if forced not in (None, "auto", *POLICIES):
        raise ValueError(f"forced offload policy {forced!r} is not one of auto, {', '.join(POLICIES)}")
    numbers = {name.removesuffix("_bytes"): value for name, value in arguments.items()}
    numbers["activations"] = numbers.pop("activation")
    numbers["device_room"] = device_free_bytes + evictable_bytes
    plan = _choose(numbers, has_cuda)
    if forced == plan.policy:
        plan = _plan(forced, f"forced, as chosen: {plan.reason}", numbers, plan.numbers["need"], plan.fits)
    elif forced not in (None, "auto"):
        need = _need(forced, numbers, has_cuda, None)
        saves = "" if has_cuda or forced in ("resident", "disk") else " (on a CPU it saves no memory)"
        reason = f"forced{saves}, needs {_mb(need)}; the automatic choice would be {plan.reason}"
        plan = _plan(forced, reason, numbers, need, need <= numbers["device_room"])
    logger.info("offload plan: %s", plan.reason)
    return plan


def estimate_activation_bytes(
    kind: str,
    width: int,
    height: int,
    frames: int,
    batch: int = 1,
    cfg: bool = False,
    dtype_bytes: int = 2,
    hidden_size: int = 5120,
    *,
    patch_size: tuple[int, int, int] = (1, 2, 2),
    spatial_ratio: int = 8,
    temporal_ratio: int = 4,
) -> int:
    """A rough estimate (within 2x, not a measurement) of the working memory of one forward, in bytes.

    ``transformer`` (a video DiT such as Wan): latent frames ``lf = (frames - 1) // temporal_ratio + 1``, tokens
    ``= ceil(lf / pt) * ceil(height / spatial_ratio / ph) * ceil(width / spatial_ratio / pw)`` with ``patch_size =
    (pt, ph, pw)``; bytes ``= streams * tokens * hidden_size * dtype_bytes * TRANSFORMER_ACTIVATION_FACTOR`` where
    ``streams = batch * (2 if cfg else 1)`` (CFG counted as batched, the worst case). Inference frees each layer's
    activations before the next, so the layer count does not enter. It assumes memory-efficient attention (SDPA,
    flash); the math kernel adds ``tokens**2 * heads * dtype_bytes`` per stream.

    ``vae_decode``: ``batch * frames * height * width * hidden_size * dtype_bytes * VAE_ACTIVATION_FACTOR``, where
    ``frames`` are the output frames decoded at once (the Wan VAE decodes a few at a time) and ``hidden_size`` the
    decoder's channels at full resolution (96 for Wan 2.1); ``cfg`` and the patch and ratios are unused.
    """
    if kind not in ACTIVATION_KINDS:
        raise ValueError(f"activation kind {kind!r} is not one of {', '.join(ACTIVATION_KINDS)}")
    sizes = {"width": width, "height": height, "frames": frames, "batch": batch, "dtype_bytes": dtype_bytes}
    sizes |= {"hidden_size": hidden_size, "spatial_ratio": spatial_ratio, "temporal_ratio": temporal_ratio}
    sizes |= {f"patch_size[{index}]": size for index, size in enumerate(patch_size)}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if kind == "vae_decode":
        return batch * frames * height * width * hidden_size * dtype_bytes * VAE_ACTIVATION_FACTOR
    latent_frames = (frames - 1) // temporal_ratio + 1
    pt, ph, pw = patch_size
    tokens = (
        math.ceil(latent_frames / pt) * math.ceil(height / spatial_ratio / ph) * math.ceil(width / spatial_ratio / pw)
    )
    streams = batch * (2 if cfg else 1)
    return streams * tokens * hidden_size * dtype_bytes * TRANSFORMER_ACTIVATION_FACTOR


def _choose(n: dict[str, int], has_cuda: bool) -> OffloadPlan:
    """The automatic plan (see ``choose_offload``); ``n`` holds the validated numbers."""
    device = "the GPU" if has_cuda else "RAM"
    whole = n["weights"] + n["activations"]
    sums = f"weights {_mb(n['weights'])} + activations {_mb(n['activations'])}"
    if whole <= n["device_free"]:
        return _plan("resident", f"{sums} fit the {_mb(n['device_free'])} free on {device}", n, whole)
    if not has_cuda:
        return _disk(n, has_cuda, f"{sums} exceed the {_mb(n['device_room'])} RAM can give")
    short = f"{sums} exceed the {_mb(n['device_free'])} free on the GPU"
    if whole <= n["device_room"]:
        reason = f"{short}, but fit once idle models are evicted ({_mb(n['device_room'])}); back to RAM after each use"
        return _plan("model", reason, n, whole)
    short = f"{sums} exceed the {_mb(n['device_room'])} the GPU can give"
    if n["weights"] > n["ram_free"]:
        return _disk(n, has_cuda, f"{short}, and the weights exceed the {_mb(n['ram_free'])} of free RAM")
    for use_stream in (None, False):
        need = _need("block", n, has_cuda, use_stream)
        if need <= n["device_room"]:
            how = "with the next block prefetched" if use_stream is None else "one block at a time, no prefetch"
            reason = (
                f"{short}; blocks of up to {_mb(n['largest_block'])} {how} + {_mb(n['non_block'])} outside the "
                f"blocks + activations need {_mb(need)}"
            )
            return _plan("block", reason, n, need, use_stream=use_stream)
    need = _need("leaf", n, has_cuda, None)
    fits = need <= n["device_room"]
    reason = (
        f"{short}, even one block ({_mb(n['largest_block'])} + {_mb(n['non_block'])} outside the blocks) does not fit; "
        f"single layers of up to {_mb(n['largest_leaf'])} + activations need {_mb(need)}"
    )
    if not fits:
        reason += f", more than {_mb(n['device_room'])}: expect running out of memory (lower the size or tile)"
    return _plan("leaf", reason, n, need, fits=fits)


def _disk(n: dict[str, int], has_cuda: bool, why: str) -> OffloadPlan:
    for use_stream in (None, False) if has_cuda else (None,):
        need = _need("disk", n, has_cuda, use_stream)
        if need <= n["device_room"]:
            reason = f"{why}; weights stream from disk one block at a time, needing {_mb(need)}"
            return _plan("disk", reason, n, need, use_stream=use_stream)
    reason = (
        f"{why}; weights stream from disk one block at a time, but that needs {_mb(need)}, more than "
        f"{_mb(n['device_room'])}: expect running out of memory (lower the size or tile)"
    )
    return _plan("disk", reason, n, need, fits=False, use_stream=use_stream)


def _need(policy: str, n: dict[str, int], has_cuda: bool, use_stream: bool | None) -> int:
    """Device bytes ``policy`` needs: resident groups + activations (two groups where a CUDA stream prefetches)."""
    groups = 2 if has_cuda and use_stream is None else 1
    if policy in ("resident", "model"):
        return n["weights"] + n["activations"]
    if policy == "leaf":
        return groups * n["largest_leaf"] + n["activations"]
    return n["non_block"] + groups * n["largest_block"] + n["activations"]


def _plan(
    policy: str, reason: str, n: dict[str, int], need: int, fits: bool = True, use_stream: bool | None = None
) -> OffloadPlan:
    return OffloadPlan(policy, f"{policy}: {reason}", {**n, "need": need}, fits, use_stream)


def _blocks(module: torch.nn.Module, named: frozenset[str] | None = None) -> list[torch.nn.Module]:
    """The modules diffusers' block-level offloading puts in groups (one block each)."""
    if named is None:
        named = frozenset(getattr(module, "_group_offload_block_modules", None) or ())
    blocks: list[torch.nn.Module] = []
    for name, child in module.named_children():
        if name in named:
            blocks += _blocks(child, named)  # diffusers recurses with the top-level names
        elif isinstance(child, torch.nn.ModuleList | torch.nn.Sequential):
            blocks += list(child)
    return blocks


def _nbytes(module: torch.nn.Module) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in [*module.parameters(), *module.buffers()])


def _mb(nbytes: int) -> str:
    return f"{nbytes / MB:,.0f} MB"
