"""The CogVideoX video model family (THUDM/Zhipu): 2B/5B and 1.5 text- and image-to-video from diffusers folders."""
