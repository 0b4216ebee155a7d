"""styleclip_jax: StyleCLIP (text-driven StyleGAN2 editing) in JAX/Flax.

    import styleclip_jax as sc
    G = sc.load_generator("shapes")          # or an NVlabs .pkl, rosinality .pt, converted folder
    ws = G.mapping(z, truncation_psi=0.7)    # (N, num_ws, w_dim)
    img = G.synthesis(ws)                    # (N, H, W, 3) NHWC float32, ~[-1, 1]
    s = G.w_to_s(ws)                         # StyleSpace: {layer name: (N, C)}
    clip = sc.load_clip("shapes")            # or "openai/clip-vit-base-patch32" / a local folder
    from styleclip_jax import global_direction as gd, latent_optimization as lo

torch is never imported here; only the .pt/.pth readers import it, lazily.
"""
from . import layout, ops
from .arcface import ArcFace, identity_loss, identity_similarity, load_arcface
from .clip import CLIP, CLIPLoadError, CLIPTokenError, load_clip
from .generator import Generator, GeneratorConfig, StyleGAN2, init_params, seeds_to_z
from .loaders import load_generator

__version__ = "0.1.0"


def __getattr__(name):
    # heavier submodules on first use: sc.global_direction, sc.latent_optimization, sc.load_mapper, ...
    import importlib
    if name in ("global_direction", "latent_optimization", "gd_math", "optim", "mapper_nets", "mapper",
                "checkpoints", "torch_io", "io_utils", "latents_io", "shapes"):
        return importlib.import_module(f".{name}", __name__)
    if name == "load_mapper":
        from .mapper import load_mapper
        return load_mapper
    raise AttributeError(f"module 'styleclip_jax' has no attribute {name!r}")
