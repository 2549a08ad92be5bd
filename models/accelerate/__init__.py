"""Accelerators: training-free speed-ups of the diffusion network (feature caches, sparse attention), applied
for one sampling run."""
