"""Application wiring shared by the command line and the server: configuration, engine assembly, the headless runner."""
