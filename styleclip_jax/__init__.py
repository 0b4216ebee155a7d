"""styleclip_jax: StyleCLIP (text-driven StyleGAN2 editing) in JAX/Flax.

    import styleclip_jax as sc
    G = sc.load_generator("shapes")          # or an NVlabs .pkl, rosinality .pt, converted folder
    ws = G.mapping(z, truncation_psi=0.7)    # (N, num_ws, w_dim)
    img = G.synthesis(ws)                    # (N, H, W, 3) NHWC float32, ~[-1, 1]
    s = G.w_to_s(ws)                         # StyleSpace: {layer name: (N, C)}
    E = sc.load_encoder("e4e_ffhq_encode.pt")  # e4e/pSp encoder; E.encode(images) -> W+
    clip = sc.load_clip("shapes")            # or "openai/clip-vit-base-patch32" / a local folder
    from styleclip_jax.editing import global_direction as gd, latent_optimization as lo

Folders: models/ (networks as pure functions), checkpoints/ (checkpoint I/O), editing/ (the three
StyleCLIP methods), jobs/ (the command-line drivers), shapes/ (the offline world).
torch is never imported here; only the .pt/.pth readers import it, lazily.
"""
import importlib as _importlib
import warnings as _warnings

from .models import layout, ops
from .models.arcface import ArcFace, identity_loss, identity_similarity, load_arcface
from .models.clip import CLIP, CLIPLoadError, CLIPTokenError, load_clip
from .models.generator import Generator, GeneratorConfig, StyleGAN2, init_params, seeds_to_z
from .loaders import load_generator
from .checkpoints.e4e import load_encoder
from .images import load_images
from .align import align_face

__version__ = "0.1.0"

# Module names README documented before the package was split into subpackages.
_MOVED = {
    "generator": "models.generator",
    "global_direction": "editing.global_direction",
    "latent_optimization": "editing.latent_optimization",
    "gd_math": "editing.global_direction_math",
}
_SUBPACKAGES = ("models", "checkpoints", "editing", "jobs", "shapes")


def __getattr__(name):
    if name in _MOVED:
        _warnings.warn(f"styleclip_jax.{name} moved to styleclip_jax.{_MOVED[name]}", DeprecationWarning,
                       stacklevel=2)
        return _importlib.import_module(f".{_MOVED[name]}", __name__)
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)
    if name == "load_mapper":
        from .editing.mapper import load_mapper
        return load_mapper
    raise AttributeError(f"module 'styleclip_jax' has no attribute {name!r}")
