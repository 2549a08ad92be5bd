"""The Wan 2.1 / 2.2 video model family: single-file checkpoints, latents and the sampling adapter."""
