"""styleclip_jax: StyleCLIP (text-driven StyleGAN2 editing) in JAX/Flax.

    import styleclip_jax as sc
    G = sc.load_generator("shapes")          # or an NVlabs .pkl, rosinality .pt, converted folder
    ws = G.mapping(z, truncation_psi=0.7)    # (N, num_ws, w_dim)
    img = G.synthesis(ws)                    # (N, H, W, 3) NHWC float32, ~[-1, 1]
"""
from . import layout, ops
from .generator import Generator, GeneratorConfig, StyleGAN2, init_params, seeds_to_z
from .loaders import load_generator

__version__ = "0.1.0"
