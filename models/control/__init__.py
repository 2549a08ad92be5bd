"""Control signals for video generation: structure maps, camera paths and motion trajectories."""
