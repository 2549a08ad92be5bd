"""Tests of the torchao quantizers and their files."""
