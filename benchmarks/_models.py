"""Random-weight models of real sizes for the benchmarks (nothing is downloaded)."""
from __future__ import annotations

import jax

import styleclip_jax as sc

GENERATORS = {
    "256": sc.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=256, channel_base=16384, channel_max=512),
    "1024": sc.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=1024, channel_base=32768, channel_max=512),
}


def random_generator(name: str) -> sc.Generator:
    cfg = GENERATORS[name]
    return sc.Generator(sc.init_params(jax.random.PRNGKey(0), cfg), cfg)


def vit_b32_clip(preprocess: str = "official") -> sc.CLIP:
    """A ViT-B/32-shaped FlaxCLIPModel (transformers' CLIPConfig defaults) with random weights."""
    from transformers import CLIPConfig, FlaxCLIPModel
    cfg = CLIPConfig()
    model = FlaxCLIPModel(cfg, _do_init=False)
    params = jax.jit(model.init_weights, static_argnums=1)(jax.random.PRNGKey(0), ((1, 77), (1, 224, 224, 3)))
    return sc.CLIP(model, None, params, preprocess=preprocess, name="random ViT-B/32")
