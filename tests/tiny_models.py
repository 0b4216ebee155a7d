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
    """A random FlaxCLIPModel wrapped in styleclip_jax.models.clip.CLIP (image path only)."""
    from transformers import CLIPConfig, FlaxCLIPModel
    from styleclip_jax.models.clip import CLIP
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


@jax.tree_util.register_pytree_node_class
class LinearEmbedder:
    """A CLIP stand-in with a well-conditioned image embedding: normalise(tanh(flatten(img) @ W)).

    Random tiny ViTs barely react to small image changes (|f+ - f-| ~ 5e-4), so renormalised
    differences amplify float32 rounding; this stand-in keeps sweep-machinery tests sharp."""

    def __init__(self, params, preprocess="linear"):
        self.params = params
        self.preprocess = preprocess

    def tree_flatten(self):
        return (self.params,), self.preprocess

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], aux)

    @property
    def embed_dim(self):
        return self.params["w"].shape[1]

    @property
    def image_embed_fn(self):
        def f(params, images):
            e = jnp.tanh(images.reshape(images.shape[0], -1) @ params["w"])
            return e / jnp.linalg.norm(e, axis=-1, keepdims=True)
        return f

    def encode_images(self, images):
        return self.image_embed_fn(self.params, images)


def linear_embedder(res, dim=16, seed=0):
    w = jax.random.normal(jax.random.PRNGKey(seed), (res * res * 3, dim)) / (res * 1.5)
    return LinearEmbedder({"w": w})
