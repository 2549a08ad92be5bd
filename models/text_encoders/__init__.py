"""Text encoders from single files (UMT5-XXL for Wan), their tokenizers, and prompt encoding."""
