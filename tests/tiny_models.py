"""Tiny random models shared by the method tests (no files, no tokenizer)."""
import functools

import jax
import jax.numpy as jnp

import styleclip_jax as sc

TINY_G = sc.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=128, channel_max=16,
                            mapping_layers=2)


@functools.lru_cache(maxsize=None)
def tiny_generator(seed=0, cfg=TINY_G):
    params = sc.init_params(jax.random.PRNGKey(seed), cfg)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.1 if p[-1].key in ("noise_strength", "w_avg") else x, params)
    return sc.Generator(params, cfg)


@functools.lru_cache(maxsize=None)
def tiny_clip(image_size=16, seed=0, embed=16):
    """A random FlaxCLIPModel wrapped in styleclip_jax.clip.CLIP (image path only)."""
    from transformers import CLIPConfig, FlaxCLIPModel
    from styleclip_jax.clip import CLIP
    cfg = CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8),
        vision_config=dict(image_size=image_size, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2),
        projection_dim=embed)
    model = FlaxCLIPModel(cfg, _do_init=False)
    params = jax.jit(model.init_weights, static_argnums=1)(jax.random.PRNGKey(seed),
                                                          ((1, 1), (1, image_size, image_size, 3)))
    return CLIP(model, None, params)


def unit(key, n, d):
    v = jax.random.normal(jax.random.PRNGKey(key), (n, d))
    return v / jnp.linalg.norm(v, axis=-1, keepdims=True)
