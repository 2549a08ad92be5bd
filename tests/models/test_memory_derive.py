"""``ModelManager.derive``: a changed copy of a model (a LoRA merge) that takes the base's idle module instead of
reading the weights again, and falls back to the base's loader when it cannot."""

from __future__ import annotations

import torch

from models.memory import Location
from tests.models.test_memory import Blob, check, make, where


def plus_one(module: torch.nn.Module) -> torch.nn.Module:
    assert isinstance(module, Blob)
    with torch.no_grad():
        module.weight.add_(1.0)
    return module


def test_derive_takes_the_idle_base_module_without_loading_again() -> None:
    manager, _, loaders = make()
    base = manager.load("base", loaders("base", 2))
    with base.use():  # on the device, then idle
        pass
    derived = manager.derive(base, "+one", plus_one)
    assert derived.key == "base+one"
    assert loaders.calls["base"] == 1  # the base's module was reused, not read again
    assert base.location == Location.UNLOADED
    with derived.use() as module:
        assert torch.all(module.weight == 1.0)
    check(manager)
    with base.use() as module:  # the base reloads unchanged when it is used again
        assert torch.all(module.weight == 0.0)
    assert loaders.calls["base"] == 2
    assert set(where(manager)) == {"base", "base+one"}


def test_derive_loads_a_fresh_copy_while_the_base_is_in_use() -> None:
    manager, _, loaders = make()
    base = manager.load("base", loaders("base", 1))
    with base.use() as base_module:
        derived = manager.derive(base, "+one", plus_one)
        assert loaders.calls["base"] == 2
        assert torch.all(base_module.weight == 0.0)  # the module in use was not touched
    with derived.use() as module:
        assert torch.all(module.weight == 1.0)


def test_derived_model_reloads_through_the_chain_after_an_unload() -> None:
    manager, _, loaders = make()
    base = manager.load("base", loaders("base", 1))
    derived = manager.derive(base, "+one", plus_one)
    twice = manager.derive(derived, "+one", plus_one)
    assert derived.location == Location.UNLOADED and base.location == Location.UNLOADED
    manager.free(unload_all=True)
    with twice.use() as module:
        assert torch.all(module.weight == 2.0)
    assert loaders.calls["base"] == 2
