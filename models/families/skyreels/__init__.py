"""SkyReels-V2: Wan 2.1-architecture text/image-to-video networks and their diffusion-forcing sampling."""
