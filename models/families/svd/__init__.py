"""Stable Video Diffusion (Stability AI): single-file checkpoints in the SGM layout (``svd.safetensors``,
``svd_xt.safetensors``: UNet, ViT-H CLIP vision and VAE with a temporal decoder in one file), latents and the
sampling adapter (EDM, ``v`` prediction)."""
