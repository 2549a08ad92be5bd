"""Tests of models.text_encoders."""
