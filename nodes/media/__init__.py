"""Media library under the media nodes: the VIDEO and AUDIO types, decoding, encoding and embedded workflows (PyAV)."""
