"""Stable Diffusion 1.5: its UNet, VAE and CLIP-L text encoder (the base of AnimateDiff)."""
