"""Shapes world: a procedural renderer, pixel colour metrics, and a tiny CLIP that understands it.

The per-seed renderer is ``styleclip_jax.shapes.render.render(seed)`` (not re-exported here, so that
``styleclip_jax.shapes.render`` stays the module).
"""
from .metrics import (ASSET_DIR, colour_share, colour_shares, dominant_colour, generate_images,
                      load_shapes_clip, sample_colour_shares, zero_shot_accuracy, zero_shot_predict)
from .render import (BACKGROUNDS, COLOURS, IMAGE_SIZE, SHAPES, attributes_for_seeds, caption_for,
                     labels_for, render_attributes, render_batch, sample_attributes)

__all__ = [
    "ASSET_DIR", "BACKGROUNDS", "COLOURS", "IMAGE_SIZE", "SHAPES", "attributes_for_seeds", "caption_for",
    "colour_share", "colour_shares", "dominant_colour", "generate_images", "labels_for", "load_shapes_clip",
    "render_attributes", "render_batch", "sample_attributes", "sample_colour_shares",
    "zero_shot_accuracy", "zero_shot_predict",
]
