"""The LTX-Video model family: single-file checkpoints, the VAE codec, the latent upsampler and the sampling adapter."""
