"""ControlNets: Stable Diffusion 1.5 ControlNet files (LDM or diffusers layout) as diffusers' ``ControlNetModel``."""
