"""Uploaded files: size-checked, decoded with PIL only (images) or numpy without pickles (latents)."""
from __future__ import annotations

import pathlib

import numpy as np

from ..errors import InputError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024   # per file; the server refuses larger uploads too (gradio max_file_size)
MAX_IMAGE_PIXELS = 16 * 1024 * 1024   # width x height checked from the header, before decoding
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


def check_size(path, max_bytes: int = MAX_UPLOAD_BYTES) -> pathlib.Path:
    p = pathlib.Path(path)
    if not p.is_file():
        raise InputError(f"upload {p.name}: no such file")
    n = p.stat().st_size
    if n == 0:
        raise InputError(f"upload {p.name}: the file is empty")
    if n > max_bytes:
        raise InputError(f"upload {p.name}: {n / 2**20:.1f} MB is larger than the limit of {max_bytes / 2**20:.0f} MB")
    return p


def read_image(path, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> tuple:
    """(original (h, w, 3) uint8, resized (size, size, 3) float32 in [-1, 1]) of an uploaded image file.

    Only PIL decodes it, restricted to IMAGE_FORMATS; the pixel count is checked from the header before the
    pixels are decoded; RGB conversion (alpha composited on white), centre crop to a square, bicubic resize.
    """
    from PIL import Image, UnidentifiedImageError
    p = check_size(path, max_bytes)
    try:
        with Image.open(p, formats=IMAGE_FORMATS) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(f"upload {p.name}: {w}x{h} pixels is more than the limit of {MAX_IMAGE_PIXELS}")
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"upload {p.name}: not an image PIL can read ({', '.join(IMAGE_FORMATS)}): "
                         f"{type(e).__name__}") from None
    original = np.asarray(im, np.uint8)
    s = min(im.size)
    left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
    sq = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
    return original, np.asarray(sq, np.float32) / 127.5 - 1.0


def read_latents(path, num_ws: int, w_dim: int, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """(N, num_ws, w_dim) float32 W+ from an uploaded .npy/.npz (never unpickled; .pt uploads are refused)."""
    from ..checkpoints.latents import load_latents
    p = check_size(path, max_bytes)
    if p.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"upload {p.name}: latents must be a .npy or .npz file of shape (N, {num_ws}, {w_dim})")
    return np.asarray(load_latents(p, num_ws, w_dim), np.float32)
