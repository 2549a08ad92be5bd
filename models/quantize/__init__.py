"""Post-training quantization of loaded diffusion networks (torchao), and their quantized files."""
