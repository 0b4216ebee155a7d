"""The editor's callbacks as plain methods over loaded models: sources, global-direction edits, mappers, exports.

No gradio here: `ui.py` wires these methods to widgets, and tests call them directly. An edit is the CLI's
maths (`editing.global_direction.text_direction` / `direction` / `apply` on `G.w_to_s(w)`), so the same
settings give the same image as `--mode=global_direction` (tests/test_app.py compares them). Δs is cached per
(neutral, target, β) and the text direction per (neutral, target): moving α only re-renders.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import pathlib
import threading
import time
from typing import Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, InputError
from . import uploads

# StyleGAN's style-mixing groups by resolution: coarse 4-8 px, medium 16-32 px, fine 64 px and up
GROUPS = ("coarse", "medium", "fine")


def group_of(resolution: int) -> str:
    return "coarse" if resolution <= 8 else "medium" if resolution <= 32 else "fine"


@dataclasses.dataclass
class Source:
    """One image to edit: its W+ (1, num_ws, w_dim), a label, the generator's rendering of it, and for uploads
    the photo as given (uint8)."""
    w: np.ndarray
    label: str
    reconstruction: np.ndarray            # (H, W, 3) float32, ~[-1, 1]
    photo: Optional[np.ndarray] = None    # (h, w, 3) uint8, uploads only
    note: str = ""
    s: Optional[dict] = dataclasses.field(default=None, repr=False)  # G.w_to_s(w), filled on first use


@dataclasses.dataclass
class Edit:
    image: np.ndarray                     # (H, W, 3) float32, ~[-1, 1]
    codes: np.ndarray                     # edited latents: S concatenated in official order (1, sum C) or W+
    kind: str                             # "stylespace" | "w+"
    num_kept: int = 0
    seconds: float = 0.0


@jax.jit
def _render(G, s, delta, scale, alpha):
    """s: {name: (1, C)}, delta: {name: (C,)}, scale: {name: ()} -> (image (1, H, W, 3), edited s)."""
    from ..models.generator import synthesis_from_s
    edited = {k: s[k] + (alpha * scale[k]) * delta[k] for k in s}
    return synthesis_from_s(G.params, G.cfg, edited, "const"), edited


@jax.jit
def _w_to_s_and_image(G, w):
    from ..models.generator import synthesis_from_s, w_to_s
    s = w_to_s(G.params, G.cfg, w)
    return s, synthesis_from_s(G.params, G.cfg, s, "const")


def _encoder_from(name):
    """(encode(images (N,H,W,3) [-1,1]) -> W+, input size, error message): feature-detects sc.load_encoder."""
    import styleclip_jax as sc
    if name is None:
        return None, None, "no encoder configured (--config.encoder); uploaded photos cannot be inverted"
    try:
        load = sc.load_encoder
    except AttributeError:
        return None, None, ("uploaded photos need an image encoder, and this install of styleclip_jax has none "
                            "(sc.load_encoder is missing); use a seed or a latents file")
    try:
        E = load(name)
    except Exception as e:  # any load failure becomes a message in the page, never a crash
        return None, None, f"the encoder {name!r} could not be loaded: {' '.join(str(e).split())}"
    size = getattr(E, "input_size", None) or getattr(getattr(E, "config", None), "input_size", None)
    return E.encode, (int(size) if size else None), None


def _refiner():
    """invert.refine(G, w, images, steps) of the inversion feature when the package has it, else None."""
    for mod in ("styleclip_jax.editing.invert", "styleclip_jax.invert"):
        try:
            import importlib
            return getattr(importlib.import_module(mod), "refine")
        except (ImportError, AttributeError):
            continue
    return None


class Editor:
    """Models and caches shared by every browser session; sessions keep their own `Source`."""

    def __init__(self, G, clip, mean, std, fs3, *, encode=None, encoder_size=None, encoder_error=None,
                 paths=None, cache_size: int = 64,
                 max_upload_bytes: int = uploads.MAX_UPLOAD_BYTES, refine_steps: int = 0, refine_lr: float = 0.01):
        from ..editing import global_direction as gd
        self.G, self.clip, self.mean, self.std, self.fs3 = G, clip, mean, std, np.asarray(fs3, np.float32)
        self.encode, self.encoder_size, self.encoder_error = encode, encoder_size, encoder_error
        self.paths = paths or {}
        self.max_upload_bytes = int(max_upload_bytes)
        self.refine_steps, self.refine_lr = int(refine_steps), float(refine_lr)
        self.layout = gd.layout_of(G)
        self.layers = list(G.layout)
        self.groups = {l.name: group_of(l.resolution) for l in self.layers}
        self.group_layers = {g: [l.name for l in self.layers if self.groups[l.name] == g] for g in GROUPS}
        rows = [(l.name, c) for l in self.layers if not l.is_torgb for c in range(l.channels)]
        self._row_layer = np.array([r[0] for r in rows][: self.fs3.shape[0]])
        self._row_channel = np.array([r[1] for r in rows][: self.fs3.shape[0]])
        self._dt = collections.OrderedDict()
        self._delta = collections.OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._mappers: Dict[str, object] = {}
        self.ready = threading.Event()
        self.status = "warming up (compiling the generator and CLIP)..."

    @classmethod
    def from_config(cls, config, verbose: bool = True) -> "Editor":
        from ..jobs import global_direction as gdjob
        G, clip, _ = gdjob.load_models(config)
        mean, std, fs3, paths = gdjob.precompute(config, G, clip, verbose=verbose)
        encode, size, err = _encoder_from(config.encoder)
        return cls(G, clip, mean, std, fs3, encode=encode, encoder_size=size, encoder_error=err, paths=paths,
                   max_upload_bytes=int(float(config.max_upload_mb) * 2 ** 20),
                   refine_steps=int(config.refine_steps), refine_lr=float(config.refine_lr))

    # ------------------------------------------------------------------------------------------- sources
    def _source(self, w, label, photo=None, note="") -> Source:
        w = np.asarray(w, np.float32).reshape(1, self.G.num_ws, self.G.cfg.w_dim)
        s, img = _w_to_s_and_image(self.G, jnp.asarray(w))
        return Source(w, label, np.asarray(img[0]), photo, note, s)

    def source_from_seed(self, seed, truncation_psi: float = 0.7) -> Source:
        from ..models.generator import seeds_to_z
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise InputError(f"seed {seed!r}: expected an integer") from None
        if not 0 <= seed < 2 ** 32:
            raise InputError(f"seed {seed}: expected 0 <= seed < 2**32")
        w = self.G.mapping(seeds_to_z([seed], self.G.cfg.z_dim), truncation_psi=float(truncation_psi))
        return self._source(w, f"seed {seed}")

    def source_from_latents(self, path, index: int = 0) -> Source:
        w = uploads.read_latents(path, self.G.num_ws, self.G.cfg.w_dim, self.max_upload_bytes)
        index = int(index)
        if not 0 <= index < len(w):
            raise InputError(f"latents file {pathlib.Path(path).name} holds {len(w)} latents; index {index} is "
                             f"out of range")
        return self._source(w[index], f"latent {index} of {pathlib.Path(path).name}")

    def source_from_upload(self, path, refine_steps: int = 0) -> Source:
        """Invert an uploaded photo: the encoder, then `refine_steps` of `invert.refine` (from the mean W when
        there is no encoder). InputError when neither can run."""
        size = self.encoder_size or self.G.cfg.img_resolution
        photo, img = uploads.read_image(path, size, self.max_upload_bytes)  # first: a bad file is named as such
        steps, refine = int(refine_steps), _refiner()
        if self.encode is None and (refine is None or steps <= 0):
            hint = "; or set refinement steps > 0 to invert by optimisation from the mean W" if refine else ""
            raise InputError((self.encoder_error or "no encoder") + hint)
        w, note = None, "mean W"
        if self.encode is not None:
            w, note = np.asarray(self.encode(jnp.asarray(img[None]))), "encoder"
        if steps > 0:
            if refine is None:
                note += " (refinement is not available in this install)"
            else:
                target = uploads.read_image(path, self.G.cfg.img_resolution, self.max_upload_bytes)[1]
                out = refine(self.G, w, jnp.asarray(target[None]), steps, lr=self.refine_lr)
                w = np.asarray(out[0] if isinstance(out, tuple) else out)
                note += f" + {steps} refinement steps"
        return self._source(w, f"upload {pathlib.Path(path).name}", photo, note)

    # ------------------------------------------------------------------------------------------ direction
    def _cached(self, cache, key, make):
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        val = make()
        with self._lock:
            cache[key] = val
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return val

    def text_direction(self, neutral: str, target: str) -> np.ndarray:
        from ..editing import global_direction as gd
        neutral, target = _prompt(neutral, "neutral"), _prompt(target, "target")
        if neutral == target:
            raise InputError("the neutral and target prompts are the same: there is no direction between them")
        return self._cached(self._dt, (neutral, target),
                            lambda: np.asarray(gd.text_direction(self.clip, neutral, target)))

    def direction(self, neutral: str, target: str, beta: float):
        """(Δs {name: (C,)} as device arrays, number of channels kept), cached per (neutral, target, β)."""
        from ..editing import global_direction as gd
        beta = float(beta)
        if not beta >= 0:
            raise InputError(f"beta {beta}: expected >= 0")
        dt = self.text_direction(neutral, target)

        def make():
            d, k = gd.direction(self.fs3, dt, self.std, beta)
            return {n: jnp.asarray(v) for n, v in d.items()}, int(k)
        return self._cached(self._delta, (neutral.strip(), target.strip(), beta), make)

    def channels(self, neutral: str, target: str, beta: float, limit: int = 20) -> Tuple[List[tuple], int]:
        """The channels the direction uses: [(layer, channel, relevance r = fs3 @ Δt)] by |r|, and how many."""
        r = self.fs3 @ self.text_direction(neutral, target)
        kept = np.flatnonzero(np.abs(r) >= float(beta))
        order = kept[np.argsort(-np.abs(r[kept]), kind="stable")][: int(limit)]
        return [(str(self._row_layer[i]), int(self._row_channel[i]), float(r[i])) for i in order], int(kept.size)

    def scales(self, strengths: Optional[Dict[str, float]] = None) -> Dict[str, jnp.ndarray]:
        strengths = strengths or {}
        bad = set(strengths) - set(GROUPS)
        if bad:
            raise InputError(f"unknown layer group(s) {sorted(bad)}; expected {', '.join(GROUPS)}")
        return {l.name: jnp.float32(strengths.get(self.groups[l.name], 1.0)) for l in self.layers}

    # ------------------------------------------------------------------------------------------------ edits
    def edit(self, source: Source, neutral: str, target: str, alpha: float, beta: float,
             strengths: Optional[Dict[str, float]] = None) -> Edit:
        """s' = s + α · g(layer) · Δs (g: the coarse/medium/fine strength, 1 by default) -> image and S code."""
        t0 = time.perf_counter()
        delta, kept = self.direction(neutral, target, beta)
        s = self._s_of(source)
        img, s_edit = _render(self.G, s, delta, self.scales(strengths), jnp.float32(alpha))
        img = np.asarray(img[0])
        codes = np.concatenate([np.asarray(s_edit[l.name]) for l in self.layers], axis=-1)
        return Edit(img, codes, "stylespace", kept, time.perf_counter() - t0)

    def _s_of(self, source: Source):
        if source.s is None:
            source.s, _ = _w_to_s_and_image(self.G, jnp.asarray(source.w))
        return source.s

    def mapper(self, path: str):
        if not path:
            raise InputError("choose a trained mapper (a folder from --mode=mapper_train, a converted mapper, or an "
                             "official StyleCLIP .pt)")
        if path not in self._mappers:
            from ..editing.mapper import load_mapper
            from ..jobs.mapper_infer import _check_fit
            p = pathlib.Path(path).expanduser()
            if not p.exists():
                raise InputError(f"mapper {path}: does not exist")
            m = load_mapper(p)
            try:
                _check_fit(m, self.G, path)
            except ConfigError as e:
                raise InputError(str(e)) from None
            self._mappers[path] = m
        return self._mappers[path]

    def mapper_edit(self, source: Source, path: str, alpha: float) -> Edit:
        """w + 0.1 α M(w) (or the StyleSpace mapper's s + 0.1 α M(s)), as `--mode=mapper_infer`."""
        from ..jobs.mapper_infer import edit
        t0 = time.perf_counter()
        m = self.mapper(path)
        img, code = edit(self.G, m, source.w, float(alpha))
        if isinstance(code, dict):
            codes, kind = np.concatenate([code[l.name] for l in self.layers], axis=-1), "stylespace"
        else:
            codes, kind = np.asarray(code), "w+"
        return Edit(np.asarray(img[0]), codes, kind, 0, time.perf_counter() - t0)

    # ---------------------------------------------------------------------------------------------- outputs
    def export_study(self, source: Source, neutral: str, target: str, alphas, beta: float, out_dir) -> dict:
        """The CLI's study files (grid, index.html, images.npz, metrics.json) for this source and settings."""
        from ..editing import global_direction as gd
        from ..jobs.global_direction import write_outputs
        alphas = [float(a) for a in alphas]
        pairs = [(_prompt(neutral, "neutral"), _prompt(target, "target"))]
        res = gd.study(self.G, self.clip, source.w, pairs, alphas, [float(beta)], self.fs3, self.mean, self.std)
        return write_outputs(pathlib.Path(out_dir), res, pairs, alphas, [float(beta)], [source.label], self.paths)

    def save_edit(self, edit: Edit, out_dir, stem: str = "edit") -> Tuple[str, str]:
        """Write `<stem>.png` (the generator's resolution) and `<stem>.npy` (its latents); returns both paths."""
        from ..jobs import outputs as io_utils
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        png, npy = out / f"{stem}.png", out / f"{stem}.npy"
        io_utils.save_png(png, io_utils.to_uint8(edit.image))
        io_utils.write_npy(npy, np.asarray(edit.codes, np.float32))
        return str(png), str(npy)

    # ------------------------------------------------------------------------------------------------ warm-up
    def warm_up(self, neutral: str, target: str, alpha: float, beta: float, mapper: Optional[str] = None) -> float:
        """Compile every program a slider move runs (render, text encoder, encoder) so no move pays for it."""
        t0 = time.perf_counter()
        try:
            src = self.source_from_seed(0)
            self.edit(src, neutral, target, alpha, beta)
            self.edit(src, neutral, target, alpha, beta, {"coarse": 0.5})
            self.channels(neutral, target, beta)
            self.text_direction(neutral, neutral + " and")  # the CLIP text program for an uncached pair
            if self.encode is not None:
                size = self.encoder_size or self.G.cfg.img_resolution
                self.encode(jnp.zeros((1, size, size, 3), jnp.float32))
            refine = _refiner()
            if refine is not None and self.refine_steps > 0:  # the page's default step count
                r = self.G.cfg.img_resolution
                refine(self.G, None, jnp.zeros((1, r, r, 3), jnp.float32), self.refine_steps, lr=self.refine_lr)
            if mapper:
                self.mapper_edit(src, mapper, alpha)
            secs = time.perf_counter() - t0
            self.status = f"ready (warm-up {secs:.1f} s)"
        except Exception as e:  # shown in the page; the server keeps running
            secs = time.perf_counter() - t0
            self.status = f"warm-up failed: {' '.join(str(e).split())}"
        self.ready.set()
        return secs


def _prompt(text, which: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InputError(f"the {which} prompt is empty")
    if len(text) > 300:
        raise InputError(f"the {which} prompt has {len(text)} characters; at most 300")
    return text


@functools.lru_cache(maxsize=None)
def display_size(resolution: int) -> int:
    """Pixels the page shows a generator image at (nearest upscaling of small generators)."""
    return max(resolution, 256)


def to_display(image) -> np.ndarray:
    """(H, W, 3) float [-1, 1] -> uint8, upscaled (nearest) to display_size."""
    from ..jobs.outputs import to_uint8
    u = to_uint8(image)
    f = max(1, display_size(u.shape[0]) // u.shape[0])
    return np.repeat(np.repeat(u, f, axis=0), f, axis=1)
