"""The StyleSpace layout table: one place that knows every S layer's name, size and role.

S = the per-layer affine outputs of the synthesis network, named and ordered as StyleCLIP's
`global_torch` code does: conv1_resolution_4, toRGB_resolution_4, then for every resolution
r = 8 .. R: conv0_resolution_r (up-sampling conv), conv1_resolution_r, toRGB_resolution_r.
A layer's S width is its number of *input* channels. toRGB styles are the raw affine output;
the toRGB weight gain 1/sqrt(in_channels) is applied inside the toRGB layer.

W+ rows: conv1_4 reads row 0, toRGB_4 row 1; block k (r = 8 * 2**k) reads rows 2k+1, 2k+2 for
its convs and 2k+3 for its toRGB, so a toRGB shares its row with the next block's conv0.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Dict, List, Tuple


@dataclasses.dataclass(frozen=True)
class SLayer:
    """One StyleSpace layer.

    name: official S name, e.g. "conv0_resolution_8".
    block: "b{res}" (the synthesis block holding it); module: "conv0" | "conv1" | "torgb".
    resolution: output resolution of the layer. in_channels = S width; out_channels.
    ws_index: the W+ row feeding its affine. up: True for the up-sampling conv0.
    is_torgb: toRGB layer (no noise, no demodulation, not edited by StyleCLIP's S methods).
    """
    index: int
    name: str
    block: str
    module: str
    resolution: int
    in_channels: int
    out_channels: int
    ws_index: int
    up: bool
    is_torgb: bool

    @property
    def channels(self) -> int:
        return self.in_channels


def block_resolutions(img_resolution: int) -> List[int]:
    log2 = int(round(math.log2(img_resolution)))
    if img_resolution < 4 or 2 ** log2 != img_resolution:
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return [2 ** i for i in range(2, log2 + 1)]


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps of the synthesis block at resolution `res` (NVlabs rule)."""
    return min(channel_base // res, channel_max)


def num_ws(img_resolution: int) -> int:
    """Rows of W+: 2 * log2(R) - 2 (18 at 1024 px)."""
    return 2 * int(round(math.log2(img_resolution))) - 2


def stylespace_layout(img_resolution: int, channel_base: int, channel_max: int,
                      img_channels: int = 3) -> Tuple[SLayer, ...]:
    """All S layers of a skip-architecture StyleGAN2 generator, in official order."""
    layers: List[SLayer] = []
    ws = 0
    prev = None
    for res in block_resolutions(img_resolution):
        ch = channels_at(res, channel_base, channel_max)
        if res == 4:
            convs = [("conv1", ch, ch, False)]
        else:
            convs = [("conv0", prev, ch, True), ("conv1", ch, ch, False)]
        for module, cin, cout, up in convs:
            name = f"{module}_resolution_{res}"
            layers.append(SLayer(len(layers), name, f"b{res}", module, res, cin, cout, ws, up, False))
            ws += 1
        layers.append(SLayer(len(layers), f"toRGB_resolution_{res}", f"b{res}", "torgb", res, ch,
                             img_channels, ws, False, True))
        prev = ch
    return tuple(layers)


_NAME = re.compile(r"^(conv0|conv1|toRGB)_resolution_(\d+)$")


def _parse(name: str):
    """(module, resolution) of an S name in the official naming, or None."""
    m = _NAME.match(name)
    if not m:
        return None
    return {"toRGB": "torgb"}.get(m.group(1), m.group(1)), int(m.group(2))


def order_names(names) -> List[str]:
    """S names (e.g. the keys of a statistics dict) sorted into official S order."""
    def key(n):
        parsed = _parse(n)
        if parsed is None:
            raise ValueError(f"not a StyleSpace layer name: {n!r} (expected e.g. 'conv0_resolution_8')")
        module, res = parsed
        return res, ("conv0", "conv1", "torgb").index(module)
    return sorted(names, key=key)


def from_names(names, channels) -> Tuple[SLayer, ...]:
    """A layout from S names and widths given in S order (a published fs3's layers, a statistics file, the
    official code's lists): toRGB iff 'RGB' is in the name (the official rule); module and resolution come
    from the name when it follows the official naming (else '' and 0); W+ rows and output widths are not
    known from names alone (-1)."""
    names, channels = list(names), list(channels)
    if len(names) != len(channels):
        raise ValueError(f"{len(names)} names but {len(channels)} channel counts")
    out = []
    for i, (n, c) in enumerate(zip(names, channels)):
        module, res = _parse(str(n)) or ("", 0)
        out.append(SLayer(i, str(n), f"b{res}" if res else "", module, res, int(c), -1, -1, module == "conv0",
                          "RGB" in str(n)))
    return tuple(out)


def from_styles(styles) -> Tuple[SLayer, ...]:
    """The layout of an S dict or per-layer statistics dict ``name -> (..., C)`` (any key order)."""
    names = order_names(styles)
    return from_names(names, [int(styles[n].shape[-1]) for n in names])


def channel_bounds(layout, max_resolution: int | None = None) -> List[int]:
    """[0, end of the first non-toRGB layer, ...]: the layer boundaries in the flat official channel order."""
    return [0] + [stop for _, stop in channel_offsets(layout, max_resolution).values()]


def s_names(layout) -> List[str]:
    return [l.name for l in layout]


def torgb_indices(layout) -> List[int]:
    return [l.index for l in layout if l.is_torgb]


def torgb_indices_for(num_layers: int) -> List[int]:
    """S indices of the toRGB layers of a skip generator with `num_layers` S layers (26 at 1024 px: 1, 4, ...,
    25), from the layout table (channel counts do not matter)."""
    res = 2 ** ((num_layers - 2) // 3 + 2)
    lay = stylespace_layout(res, 512 * res, 512) if res >= 4 else ()
    if len(lay) != num_layers:
        raise ValueError(f"{num_layers} S layers is not the S layout of a skip StyleGAN2 generator "
                         "(2 + 3k layers)")
    return torgb_indices(lay)


def non_torgb_layers(layout, max_resolution: int | None = None) -> List[SLayer]:
    """Layers StyleCLIP edits (the `mindexs` of global_torch), optionally up to a resolution."""
    return [l for l in layout if not l.is_torgb and (max_resolution is None or l.resolution <= max_resolution)]


def num_channels(layout, include_torgb: bool = False) -> int:
    return sum(l.channels for l in layout if include_torgb or not l.is_torgb)


def channel_offsets(layout, max_resolution: int | None = None) -> Dict[str, Tuple[int, int]]:
    """name -> (start, stop) of each non-toRGB layer in the flat official channel order (fs3 rows)."""
    out, pos = {}, 0
    for l in non_torgb_layers(layout, max_resolution):
        out[l.name] = (pos, pos + l.channels)
        pos += l.channels
    return out
