"""Tests of the model families (models/families)."""
