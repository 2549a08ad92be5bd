"""Frame interpolation: the ``FRAME_INTERPOLATION_MODEL`` socket's models (RIFE, FILM, a weights-free classical
optical-flow method) and running them over a clip."""
