"""The Mochi 1 video model family (Genmo): single-file checkpoints, latents, schedule and the sampling adapter."""
