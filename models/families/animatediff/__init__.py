"""AnimateDiff: motion modules added to a Stable Diffusion 1.5 UNet (diffusers UNetMotionModel)."""
