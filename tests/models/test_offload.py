"""Offload policies on the tiny Wan models (float32, CPU): same outputs as the plain model, removable, accounted.

On the CPU the onload and offload devices are both ``cpu``, so the accounting is checked from hook events; the disk
policy's RAM saving is measured in ``test_disk_rss``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.offload import (
    GROUP_POLICIES,
    POLICIES,
    AppliedOffload,
    OffloadConfig,
    applied_offload,
    apply_offload,
    remove_offload,
)
from models.offload_policy import (
    MODE_POLICIES,
    OffloadSizes,
    choose_offload,
    estimate_activation_bytes,
    offload_sizes,
)
from tests.models.tiny_models import WAN_TRANSFORMER_CONFIG, tiny_wan_transformer, tiny_wan_vae

CPU = torch.device("cpu")
MB = 1 << 20
REPO = Path(__file__).resolve().parents[2]


def wan_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, 5, 8, 8, generator=generator)
    text = torch.randn(1, 7, 32, generator=generator)
    return latents, torch.tensor([500]), text


def run(model: torch.nn.Module, device: torch.device = CPU) -> torch.Tensor:
    with torch.no_grad():
        return model(*[tensor.to(device) for tensor in wan_inputs()], return_dict=False)[0]


def wan_with_layers(num_layers: int) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return WanTransformer3DModel(**{**WAN_TRANSFORMER_CONFIG, "num_layers": num_layers}).eval()


def config_for(policy: str, tmp_path: Path, blocks: int = 1) -> OffloadConfig:
    return OffloadConfig(
        policy, num_blocks_per_group=blocks, disk_dir=tmp_path / "offload" if policy == "disk" else None
    )


def nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


# -- OffloadConfig -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "sequential"}, "'sequential' is not one of resident, model, block, leaf, disk"),
        ({"policy": "block", "num_blocks_per_group": 0}, "num_blocks_per_group must be a positive integer, got 0"),
        ({"policy": "block", "num_blocks_per_group": True}, "got True"),
        ({"policy": "block", "use_stream": "yes"}, "use_stream must be True, False or None (auto), got 'yes'"),
        ({"policy": "model", "use_stream": True}, "needs a group policy"),
        ({"policy": "block", "num_blocks_per_group": 2, "use_stream": True}, "num_blocks_per_group must be 1, got 2"),
        ({"policy": "disk"}, "the disk offload policy needs disk_dir"),
        ({"policy": "leaf", "disk_dir": Path("x")}, "disk_dir is only used by the disk policy, got policy 'leaf'"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        OffloadConfig(**kwargs)
    assert message in str(raised.value)


def test_config_accepts_a_string_disk_dir() -> None:
    assert OffloadConfig("disk", disk_dir="somewhere").disk_dir == Path("somewhere")  # type: ignore[arg-type]
    assert OffloadConfig("leaf", use_stream=True).use_stream  # leaf prefetches leaf by leaf: no block count check


# -- every policy computes what the plain model computes -----------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_gives_the_plain_output_and_removes_cleanly(policy: str, tmp_path: Path) -> None:
    model = tiny_wan_transformer()
    expected = run(model)

    applied = apply_offload(model, config_for(policy, tmp_path), CPU, CPU)
    assert applied_offload(model) is applied and applied.policy == policy
    assert not applied.use_stream  # auto: no streams without CUDA
    assert (run(model) - expected).abs().max().item() < 1e-5
    assert (run(model) - expected).abs().max().item() < 1e-5  # a second forward too (groups came back)
    if policy == "disk":
        files = list(applied.disk_path.glob("*.safetensors"))  # type: ignore[union-attr]
        assert applied.disk_path.parent == tmp_path / "offload"  # type: ignore[union-attr]
        assert len(files) == len(applied.groups) == 3  # blocks.0, blocks.1, everything else
        assert sum(file.stat().st_size for file in files) >= applied.total_bytes

    assert remove_offload(model)
    assert applied_offload(model) is None
    assert not any(hasattr(m, "_diffusers_hook") or "forward" in m.__dict__ for m in model.modules())  # no trace
    assert (run(model) - expected).abs().max().item() < 1e-5
    assert applied.disk_path is None or not applied.disk_path.exists()
    assert not remove_offload(model)  # nothing left to remove


def test_policies_follow_each_other_after_remove(tmp_path: Path) -> None:
    model = tiny_wan_transformer()
    expected = run(model)
    for policy in ("block", "leaf", "disk", "block", "resident", "disk", "leaf"):
        apply_offload(model, config_for(policy, tmp_path), CPU, CPU)
        assert (run(model) - expected).abs().max().item() < 1e-5, policy
        remove_offload(model)
    assert (run(model) - expected).abs().max().item() < 1e-5
    assert list((tmp_path / "offload").iterdir()) == []  # each disk folder went with its policy


def test_a_failed_disk_write_leaves_the_model_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    model = tiny_wan_transformer()
    expected = run(model)
    save_file = safetensors.torch.save_file
    calls: list[str] = []

    def full_disk(tensors: dict, path: str, *args: object, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device (simulated)")
        save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        apply_offload(model, config_for("disk", tmp_path), CPU, CPU)
    assert applied_offload(model) is None and len(calls) == 2
    assert not any(hasattr(m, "_diffusers_hook") for m in model.modules())
    assert (run(model) - expected).abs().max().item() < 1e-5  # the group written first was read back
    assert list((tmp_path / "offload").iterdir()) == []


def test_vae_decode_with_block_offloading_matches(tmp_path: Path) -> None:
    vae = tiny_wan_vae()
    latents = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vae.decode(latents).sample
        for policy in ("block", "disk"):
            applied = apply_offload(vae, config_for(policy, tmp_path), CPU, CPU)
            assert (vae.decode(latents).sample - expected).abs().max().item() < 1e-5
            assert applied.resident_bytes() == 0 < applied.peak_resident_bytes < applied.total_bytes
            remove_offload(vae)


def test_applying_twice_or_streams_on_cpu_is_refused(tmp_path: Path) -> None:
    model = tiny_wan_transformer()
    apply_offload(model, OffloadConfig("block"), CPU, CPU)
    with pytest.raises(ValueError, match="already has the 'block' offload policy"):
        apply_offload(model, OffloadConfig("leaf"), CPU, CPU)
    remove_offload(model)

    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(model, onload_device=CPU, offload_type="leaf_level")
    with pytest.raises(ValueError, match="group offloading applied outside Reelgraph"):
        apply_offload(model, OffloadConfig("block"), CPU, CPU)

    with pytest.raises(ValueError, match="use_stream=True needs a CUDA onload device, got cpu"):
        apply_offload(tiny_wan_transformer(), OffloadConfig("block", use_stream=True), CPU, CPU)


# -- accounting ---------------------------------------------------------------------------------------------------


def test_block_policy_peak_stays_within_one_group_plus_the_rest() -> None:
    """Six layers in groups of two: each group is a third of the block weights.

    Budget = bytes outside ``blocks`` (onloaded for the whole forward by the root group) + one group of two blocks;
    the accounting must reach it exactly and never pass it, at every forward event of every module.
    """
    model = wan_with_layers(6)
    total = nbytes([*model.parameters(), *model.buffers()])
    block_bytes = nbytes([*model.blocks.parameters(), *model.blocks.buffers()])
    rest = total - block_bytes
    budget = rest + block_bytes // 3

    applied = apply_offload(model, OffloadConfig("block", num_blocks_per_group=2), CPU, CPU)
    assert [group.nbytes for group in applied.groups] == [rest, *[block_bytes // 3] * 3]
    assert [group.name for group in applied.groups][1:] == [
        "blocks.0+blocks.1",
        "blocks.2+blocks.3",
        "blocks.4+blocks.5",
    ]
    assert sum(group.nbytes for group in applied.groups) == applied.total_bytes == total
    assert applied.resident_bytes() == applied.peak_resident_bytes == 0

    seen: list[int] = []

    def record(*_args: object) -> None:
        seen.append(applied.resident_bytes())

    for module in model.modules():
        module.register_forward_pre_hook(record)
        module.register_forward_hook(record)
    run(model)

    assert max(seen) <= budget
    assert applied.peak_resident_bytes == budget < total * 0.75
    assert applied.resident_bytes() == 0  # everything offloaded after the forward
    assert seen.count(budget) >= 6  # each group counted while its blocks ran
    applied.reset_peak()
    assert applied.peak_resident_bytes == 0


def test_leaf_policy_peak_is_one_layer_plus_enclosing_tensors() -> None:
    model = tiny_wan_transformer()
    applied = apply_offload(model, OffloadConfig("leaf"), CPU, CPU)
    groups = applied.groups
    own = sum(group.nbytes for group in groups if group.name.endswith("(own tensors)"))
    largest_layer = max(group.nbytes for group in groups if not group.name.endswith("(own tensors)"))
    assert sum(group.nbytes for group in groups) == applied.total_bytes
    run(model)
    assert largest_layer <= applied.peak_resident_bytes <= own + largest_layer
    assert applied.peak_resident_bytes < applied.total_bytes / 4
    assert applied.resident_bytes() == 0


def test_whole_model_policies_count_the_whole_model() -> None:
    model = tiny_wan_transformer()
    for policy in ("resident", "model"):
        applied = apply_offload(model, OffloadConfig(policy), CPU, CPU)
        assert applied.moves_whole_module and applied.groups == ()
        assert applied.resident_bytes() == applied.peak_resident_bytes == applied.total_bytes
        remove_offload(model)


@pytest.mark.parametrize("policy", ["block", "disk"])
def test_a_failed_forward_leaves_groups_counted_and_remove_restores_them(policy: str, tmp_path: Path) -> None:
    model = tiny_wan_transformer()
    expected = run(model)
    applied = apply_offload(model, config_for(policy, tmp_path), CPU, CPU)

    def fail(*_args: object) -> None:
        raise RuntimeError("out of memory (simulated)")

    failing = model.blocks[1].attn1.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="simulated"):
        run(model)
    root, _first, second = applied.groups
    assert applied.resident_bytes() == root.nbytes + second.nbytes  # blocks.0 went back; blocks.1 was running
    failing.remove()

    remove_offload(model)
    assert (run(model) - expected).abs().max().item() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_block_policy_on_cuda_prefetches_and_counts_two_groups() -> None:
    cuda = torch.device("cuda")
    model = wan_with_layers(6)
    expected = run(model.to(cuda), cuda).cpu()  # the same kernels (TF32 convolutions) as the offloaded runs
    model.to(CPU)
    total = nbytes([*model.parameters(), *model.buffers()])
    block = nbytes([*model.blocks[0].parameters(), *model.blocks[0].buffers()])

    applied = apply_offload(model, OffloadConfig("block"), cuda, CPU)
    assert applied.use_stream and len(applied.groups) == 7
    assert (run(model, cuda).cpu() - expected).abs().max().item() < 1e-5  # first forward: traces the order, no prefetch
    assert applied.peak_resident_bytes == total - 6 * block + block
    applied.reset_peak()
    assert (run(model, cuda).cpu() - expected).abs().max().item() < 1e-5  # then each block prefetches the next
    assert applied.peak_resident_bytes == total - 6 * block + 2 * block
    assert applied.resident_bytes() == 0

    remove_offload(model)
    assert all(tensor.device.type == "cpu" for tensor in [*model.parameters(), *model.buffers()])
    assert (run(model.to(cuda), cuda).cpu() - expected).abs().max().item() < 1e-5


# -- sizes and the automatic choice -------------------------------------------------------------------------------


def test_offload_sizes_match_the_groups_diffusers_makes() -> None:
    model = tiny_wan_transformer()
    sizes = offload_sizes(model)
    applied = apply_offload(model, OffloadConfig("block"), CPU, CPU)
    root, *blocks = applied.groups
    assert sizes == OffloadSizes(
        applied.total_bytes, max(g.nbytes for g in blocks), root.nbytes, sizes.largest_leaf_bytes
    )
    remove_offload(model)
    applied = apply_offload(model, OffloadConfig("leaf"), CPU, CPU)
    assert sizes.largest_leaf_bytes == max(g.nbytes for g in applied.groups if "(own tensors)" not in g.name)

    from diffusers import WanTransformer3DModel

    with torch.device("meta"):  # sizes before loading: only shapes are read
        assert offload_sizes(WanTransformer3DModel(**WAN_TRANSFORMER_CONFIG)) == sizes

    vae_sizes = offload_sizes(tiny_wan_vae())  # blocks inside encoder/decoder (_group_offload_block_modules)
    assert 0 < vae_sizes.largest_block_bytes and vae_sizes.non_block_bytes < vae_sizes.weights_bytes


# weights 1000 MB: blocks of 100, 200 outside the blocks, layers of 10; activations 300
SIZES = {"weights_bytes": 1000 * MB, "largest_block_bytes": 100 * MB, "activation_bytes": 300 * MB}
EXTRA = {"non_block_bytes": 200 * MB, "largest_leaf_bytes": 10 * MB}


@pytest.mark.parametrize(
    ("cuda", "device_free", "evictable", "ram_free", "policy", "need", "fits", "use_stream", "words"),
    [
        (True, 2000, 0, 4000, "resident", 1300, True, None, "fit the 2,000 MB free on the GPU"),
        (True, 1300, 0, 0, "resident", 1300, True, None, "1,000 MB + activations 300 MB fit"),
        (True, 1000, 500, 4000, "model", 1300, True, None, "once idle models are evicted (1,500 MB)"),
        (True, 800, 0, 4000, "block", 700, True, None, "with the next block prefetched"),
        (True, 500, 150, 4000, "block", 600, True, False, "one block at a time, no prefetch"),
        (True, 400, 0, 4000, "leaf", 320, True, None, "single layers of up to 10 MB"),
        (True, 200, 0, 4000, "leaf", 320, False, None, "expect running out of memory"),
        (True, 800, 0, 900, "disk", 700, True, None, "exceed the 900 MB of free RAM"),
        (True, 650, 0, 900, "disk", 600, True, False, "stream from disk"),
        (True, 100, 0, 900, "disk", 600, False, False, "expect running out of memory"),
        (False, 1300, 0, 1300, "resident", 1300, True, None, "fit the 1,300 MB free on RAM"),
        (False, 1000, 200, 1000, "disk", 600, True, None, "exceed the 1,200 MB RAM can give"),
        (False, 500, 0, 500, "disk", 600, False, None, "expect running out of memory"),
    ],
)
def test_choose_offload_table(
    cuda: bool,
    device_free: int,
    evictable: int,
    ram_free: int,
    policy: str,
    need: int,
    fits: bool,
    use_stream: bool | None,
    words: str,
) -> None:
    plan = choose_offload(
        **SIZES,
        device_free_bytes=device_free * MB,
        ram_free_bytes=ram_free * MB,
        has_cuda=cuda,
        evictable_bytes=evictable * MB,
        **EXTRA,
    )
    assert (plan.policy, plan.numbers["need"], plan.fits, plan.use_stream) == (policy, need * MB, fits, use_stream)
    assert plan.reason.startswith(f"{policy}: ") and words in plan.reason
    assert plan.numbers["device_room"] == (device_free + evictable) * MB
    assert plan.numbers["weights"] == 1000 * MB and plan.numbers["activations"] == 300 * MB


def test_choose_offload_forced_and_validated(tmp_path: Path) -> None:
    common = {**SIZES, **EXTRA, "ram_free_bytes": 4000 * MB, "has_cuda": True}
    plan = choose_offload(**common, device_free_bytes=2000 * MB, forced="leaf")
    assert (plan.policy, plan.fits, plan.numbers["need"]) == ("leaf", True, 320 * MB)
    assert plan.reason.startswith("leaf: forced, needs 320 MB; the automatic choice would be resident: ")
    assert choose_offload(**common, device_free_bytes=2000 * MB, forced="auto").policy == "resident"
    same = choose_offload(**common, device_free_bytes=800 * MB, forced="block")
    assert same.reason.startswith("block: forced, as chosen: block: ") and same.use_stream is None
    too_big = choose_offload(**common, device_free_bytes=800 * MB, forced="resident")
    assert (too_big.policy, too_big.fits) == ("resident", False)
    cpu_block = choose_offload(**{**common, "has_cuda": False}, device_free_bytes=200 * MB, forced="block")
    assert "on a CPU it saves no memory" in cpu_block.reason

    assert choose_offload(**common, device_free_bytes=800 * MB).config().policy == "block"
    disk = choose_offload(**{**common, "ram_free_bytes": 10 * MB}, device_free_bytes=800 * MB)
    assert disk.config(tmp_path).disk_dir == tmp_path
    with pytest.raises(ValueError, match="needs disk_dir"):
        disk.config()

    with pytest.raises(ValueError, match="forced offload policy 'gpu' is not one of auto, resident"):
        choose_offload(**common, device_free_bytes=0, forced="gpu")
    with pytest.raises(ValueError, match="device_free_bytes must be a non-negative number of bytes, got -1"):
        choose_offload(**common, device_free_bytes=-1)
    with pytest.raises(ValueError, match=r"activation_bytes must be a non-negative number of bytes, got 1\.5"):
        choose_offload(**{**common, "activation_bytes": 1.5}, device_free_bytes=0)
    with pytest.raises(ValueError, match="block sizes exceed the weights"):
        choose_offload(**{**common, "non_block_bytes": 950 * MB}, device_free_bytes=0)
    assert set(MODE_POLICIES.values()) <= set(POLICIES) and set(GROUP_POLICIES) < set(POLICIES)


def test_estimate_activation_bytes_formula() -> None:
    # Wan 2.1 14B at 832x480, 81 frames, bf16: 21 latent frames x 30 x 52 tokens = 32,760 tokens of 5120
    wan = estimate_activation_bytes("transformer", 832, 480, 81, batch=1, cfg=False, dtype_bytes=2, hidden_size=5120)
    assert wan == 32_760 * 5120 * 2 * 10
    assert estimate_activation_bytes("transformer", 832, 480, 81, cfg=True, hidden_size=5120) == 2 * wan
    assert estimate_activation_bytes("transformer", 832, 480, 81, batch=2, hidden_size=5120) == 2 * wan
    assert estimate_activation_bytes("transformer", 832, 480, 1, hidden_size=5120) == 30 * 52 * 5120 * 2 * 10
    vae = estimate_activation_bytes("vae_decode", 832, 480, 4, dtype_bytes=4, hidden_size=96)
    assert vae == 4 * 832 * 480 * 96 * 4 * 4
    with pytest.raises(ValueError, match="activation kind 'unet' is not one of transformer, vae_decode"):
        estimate_activation_bytes("unet", 64, 64, 1)
    with pytest.raises(ValueError, match="frames must be a positive integer, got 0"):
        estimate_activation_bytes("transformer", 64, 64, 0)
    with pytest.raises(ValueError, match=r"patch_size\[1\] must be a positive integer"):
        estimate_activation_bytes("transformer", 64, 64, 1, patch_size=(1, 0, 2))


def test_applied_offload_repr() -> None:
    model = tiny_wan_transformer()
    applied = apply_offload(model, OffloadConfig("block"), CPU, CPU)
    assert isinstance(applied, AppliedOffload)
    assert repr(applied).startswith("<AppliedOffload block on cpu: 3 groups, resident 0.0 MiB of 0.1 MiB")
