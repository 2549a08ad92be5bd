"""CogVideoX's noise parametrisation: ``CogVideoXDDIMScheduler``'s v-prediction schedule with zero terminal SNR.

The released scheduler configs differ only in ``snr_shift_scale``: 3.0 for CogVideoX-2b, 1.0 for the 5B and 1.5
models. Without a scheduler config the transformer config tells them apart (2B is the one without rotary position
embeddings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.families.cogvideox.spec import CogVideoXTransformerSpec
from models.sampling.model_sampling import ZeroSnrSampling

__all__ = ["SCHEDULER_CLASSES", "default_sampling", "sampling_from_scheduler_config"]

SNR_SHIFT_2B = 3.0
SNR_SHIFT_5B = 1.0
SCHEDULER_CLASSES = ("CogVideoXDDIMScheduler", "CogVideoXDPMScheduler")
"""The scheduler classes of the releases (both share the schedule; the DPM one only steps differently)."""


def default_sampling(spec: CogVideoXTransformerSpec) -> ZeroSnrSampling:
    """The released schedule of the variant ``spec`` describes."""
    rotary = bool(spec.config["use_rotary_positional_embeddings"])
    return ZeroSnrSampling(snr_shift_scale=SNR_SHIFT_5B if rotary else SNR_SHIFT_2B)


def sampling_from_scheduler_config(config: Mapping[str, Any]) -> ZeroSnrSampling:
    """The schedule of a diffusers ``scheduler/scheduler_config.json`` of a CogVideoX folder; ``ValueError`` naming
    what Reelgraph cannot sample (another scheduler class, trained betas, another prediction or beta schedule)."""
    class_name = config.get("_class_name")
    if class_name not in SCHEDULER_CLASSES:
        raise ValueError(f"scheduler {class_name!r} is not a CogVideoX scheduler ({', '.join(SCHEDULER_CLASSES)})")
    if config.get("trained_betas") is not None:
        raise ValueError("the scheduler lists trained_betas; Reelgraph samples the beta schedules only")
    return ZeroSnrSampling(
        beta_start=float(config.get("beta_start", 0.00085)),
        beta_end=float(config.get("beta_end", 0.012)),
        schedule=str(config.get("beta_schedule", "scaled_linear")),
        steps=int(config.get("num_train_timesteps", 1000)),
        prediction=str(config.get("prediction_type", "epsilon")),
        snr_shift_scale=float(config.get("snr_shift_scale", 3.0)),
        zero_terminal_snr=bool(config.get("rescale_betas_zero_snr", False)),
    )
