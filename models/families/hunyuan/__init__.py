"""The HunyuanVideo model family: single-file checkpoints, latents and the sampling adapter."""
