"""Reading the user's image files into NHWC arrays in [-1, 1], the way e4e's transforms prepare them.

e4e's ``EncodeTransforms`` (``configs/transforms_config.py``) apply ``Resize((S, S))`` (on a PIL image:
``img.resize((S, S), BILINEAR)``, which antialiases when shrinking), ``ToTensor()`` (/255) and
``Normalize([0.5]*3, [0.5]*3)``; the dataset converts every image to RGB first.  :func:`load_images` does
exactly that with PIL and returns the images and the names read.
"""
from __future__ import annotations

import glob
import os
import pathlib
from typing import List, Sequence, Tuple, Union

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")


def resolve_paths(paths_or_glob: Union[str, os.PathLike, Sequence]) -> List[pathlib.Path]:
    """A glob pattern, a folder (its image files), one file, or a list of those -> sorted file paths."""
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
    if not items:
        raise InputError("images: no paths given")
    out: List[pathlib.Path] = []
    for item in items:
        s = os.path.expanduser(os.fspath(item))
        p = pathlib.Path(s)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{p}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif glob.has_magic(s):
            found = sorted(pathlib.Path(q) for q in glob.glob(s) if pathlib.Path(q).is_file())
            if not found:
                raise InputError(f"{s}: the pattern matches no files")
            out.extend(found)
        else:
            raise InputError(f"{p}: image file does not exist")
    return out


def read_rgb(path):
    """Open one image file as RGB, with one clear error naming the file."""
    import PIL.Image

    try:
        with PIL.Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:200]})") from None


def to_unit_range(img_uint8) -> np.ndarray:
    """uint8 (..., 3) -> float32 in [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    return (np.asarray(img_uint8, np.float32) / 255.0 - 0.5) / 0.5


def load_images(paths_or_glob, size: int) -> Tuple[np.ndarray, List[str]]:
    """Read image files as e4e does -> ((N, size, size, 3) float32 in [-1, 1], file names).

    paths_or_glob: a glob pattern (``'photos/*.png'``), a folder, a file, or a list of them.
    Every image is converted to RGB and resized to ``size`` x ``size`` with PIL's bilinear filter.
    """
    import PIL.Image

    size = int(size)
    if size < 1:
        raise InputError(f"images: size must be positive, got {size}")
    paths = resolve_paths(paths_or_glob)
    arrays = []
    for p in paths:
        im = read_rgb(p)
        if im.size != (size, size):
            im = im.resize((size, size), PIL.Image.BILINEAR)
        arrays.append(to_unit_range(np.asarray(im, np.uint8)))
    return np.stack(arrays), [p.name for p in paths]
