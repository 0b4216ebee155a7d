"""Job output helpers: image grids, flag parsing (seeds, lists) and the atomic writers of styleclip_jax.files."""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import ConfigError
from ..files import atomic_path, write_npy, write_npz  # noqa: F401 (the job outputs' writers)


def write_json(path, obj) -> None:
    """Atomic JSON write (the checkpoints module's writer; numpy scalars/arrays become plain values)."""
    from ..checkpoints import write_json as _write
    _write(path, obj, indent=2)


def parse_seeds(spec, flag: str = "--config.seeds") -> List[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; also accepts an int or a list of ints."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return [int(s) for s in spec]
    out: List[int] = []
    try:
        for part in str(spec).replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part[1:]:
                a, b = (int(x) for x in part.split("-", 1))  # a leading "-" fails int("")
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}={spec!r}: expected seeds like '0-7' or '1,5,9' (non-negative integers)") from None
    if not out or any(s < 0 for s in out):
        raise ConfigError(f"{flag}={spec!r}: expected at least one non-negative seed, like '0-7'")
    return out


def to_uint8(images) -> np.ndarray:
    """(..., H, W, 3) float in ~[-1, 1] -> uint8 with the NVlabs rule (x * 127.5 + 128, clip, round down)."""
    x = np.asarray(images, np.float32) * 127.5 + 128
    return np.clip(x, 0, 255).astype(np.uint8)


def image_grid(images, rows: int, cols: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """(rows*cols, H, W, 3) float [-1, 1] (row-major) -> one uint8 (rows*(H+pad)-pad, ..., 3) image."""
    imgs = to_uint8(images)
    n, h, w, c = imgs.shape
    if n != rows * cols:
        raise ValueError(f"image_grid: {n} images do not fill {rows}x{cols}")
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, k * (w + pad): k * (w + pad) + w] = imgs[i]
    return grid


def save_png(path, array_uint8, min_size: int = 0) -> None:
    """Write an (H, W, 3) uint8 PNG atomically; upscale (nearest) small images to >= min_size px."""
    from PIL import Image
    im = Image.fromarray(np.asarray(array_uint8))
    if min_size and min(im.size) < min_size:
        f = int(np.ceil(min_size / min(im.size)))
        im = im.resize((im.size[0] * f, im.size[1] * f), Image.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def photo_entry(photos) -> dict:
    """The images.npz entry of the original photos (N, H, W, 3) when the sources were image files, else {}."""
    return {} if photos is None else {"photo": np.asarray(photos, np.float32)}


def save_columns(path, columns, photos=None) -> None:
    """The edit grid of every mode: one row per source, the columns side by side (e.g. source | edit per
    prompt); with ``photos`` (N, H, W, 3) a first column of the original photos, so that a reader sees how
    much of the change is inversion error. columns: (C, N, H, W, 3) or a list of (N, H, W, 3)."""
    cols = [np.asarray(c) for c in columns]
    if photos is not None:
        cols = [np.asarray(photos, np.float32)] + cols
    cells = np.stack(cols, axis=1)  # (N, C, H, W, 3)
    save_grid(path, cells.reshape(-1, *cells.shape[2:]), rows=cells.shape[0], cols=cells.shape[1])


def save_grid(path, images, rows: int, cols: int, min_size: int = 256) -> None:
    save_png(path, image_grid(images, rows, cols), min_size=min_size)


def parse_list(value, flag: str, item_type=str) -> list:
    """A config list given as a JSON/Python list string ('["a", "b"]', '[-2, 0, 2]'), a tuple/list,
    or a single scalar/string -> list of item_type. Raises one clear error naming the flag."""
    import ast
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str) and value.strip().startswith(("[", "(")):
        try:
            items = list(ast.literal_eval(value.strip()))
        except (ValueError, SyntaxError):
            raise ConfigError(f"{flag}={value!r}: expected a list like '[\"a\", \"b\"]' or '[1, 2]'") from None
    elif isinstance(value, str) and item_type is not str:
        items = [v for v in value.split(",") if v.strip()]
    else:
        items = [value]
    try:
        out = [item_type(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}={value!r}: every item must be a {item_type.__name__}") from None
    if not out or (item_type is str and any(not s.strip() for s in out)):
        raise ConfigError(f"{flag}={value!r}: expected at least one non-empty item")
    return out


def parse_float_list(value, flag: str) -> list:
    return parse_list(value, flag, float)
