"""`--mode=invert`: image files -> W+ (encoder, then optional refinement), with reconstructions and metrics."""
from __future__ import annotations

import pathlib

import numpy as np

from . import outputs as io_utils
from ..errors import ConfigError


def _resolve(config):
    """(encoder spec or None, generator spec): the shipped shapes encoder when there is one and none is named;
    the generator of an e4e/pSp checkpoint when the encoder is one and no generator is named."""
    from ..checkpoints import e4e
    from ..shipped import SHAPES, SHAPES_ENCODER
    enc = config.encoder
    if enc is None:
        if config.require_encoder:
            raise ConfigError("--config.encoder is required with the official preset (e4e_ffhq_encode.pt, a "
                              "converted folder, or 'none' to start from the mean W)")
        enc = SHAPES if SHAPES_ENCODER.is_dir() else None
    elif str(enc).lower() == "none":
        enc = None
    gen = config.generator
    if gen is None:
        gen = enc if enc is not None and e4e.is_e4e_checkpoint(pathlib.Path(str(enc)).expanduser()) else SHAPES
    return enc, gen


def validate(config) -> None:
    if not config.images:
        raise ConfigError("--config.images is required: a glob ('photos/*.png'), a folder or a file")
    _resolve(config)
    r = config.refine
    if int(r.steps) < 0 or float(r.lr) <= 0 or float(r.l2_lambda) < 0 or float(r.id_lambda) < 0:
        raise ConfigError(f"--config.refine: need steps >= 0, lr > 0, l2_lambda >= 0, id_lambda >= 0; got steps="
                          f"{r.steps} lr={r.lr} l2_lambda={r.l2_lambda} id_lambda={r.id_lambda}")
    if r.pixel_loss not in ("mse", "l1"):
        raise ConfigError(f"--config.refine.pixel_loss={r.pixel_loss!r}: expected 'mse' or 'l1'")
    if r.space not in ("wplus", "s"):
        raise ConfigError(f"--config.refine.space={r.space!r}: expected 'wplus' or 's'")
    if config.noise_mode not in ("const", "none"):
        raise ConfigError(f"--config.noise_mode={config.noise_mode!r}: expected 'const' or 'none'")
    if float(r.id_lambda) > 0 and not config.arcface:
        raise ConfigError("--config.refine.id_lambda > 0 needs --config.arcface=model_ir_se50.pth (or a converted "
                          "folder)")
    if int(config.batch_size) < 1:
        raise ConfigError(f"--config.batch_size={config.batch_size}: expected >= 1")
    from ..memory import memory_args
    memory_args(config)


def _read_images(config, size: int):
    """(N, size, size, 3) in [-1, 1] and names; aligned with dlib first when a predictor is given."""
    from ..images import load_images, resolve_paths, to_unit_range
    if not config.align_landmarks_model:
        return load_images(config.images, size)
    import PIL.Image
    from ..align import align_face, dlib_landmarks
    paths = resolve_paths(config.images)
    out = []
    for p in paths:
        face = align_face(p, dlib_landmarks(p, config.align_landmarks_model))
        out.append(to_unit_range(np.asarray(PIL.Image.fromarray(face).resize((size, size), PIL.Image.BILINEAR))))
    return np.stack(out), [p.name for p in paths]


def _encode_rows(E, x):
    """W+ of image rows (the encoder treats rows independently: `parallel.map_batched`)."""
    return E.encode(x)


def run(config, workdir: str) -> dict:
    from ..checkpoints.e4e import load_encoder
    from ..editing import invert
    from ..loaders import load_generator
    from ..models.arcface import load_arcface
    validate(config)
    enc_spec, gen_spec = _resolve(config)
    r = config.refine
    steps = int(r.steps)
    G = load_generator(gen_spec)
    E = load_encoder(enc_spec) if enc_spec is not None else None
    if E is not None and (E.num_ws, E.w_dim) != (G.num_ws, G.cfg.w_dim):
        raise ConfigError(f"--config.encoder={enc_spec} gives W+ of {E.num_ws} x {E.w_dim} but the generator "
                          f"{gen_spec} takes {G.num_ws} x {G.cfg.w_dim}")
    arc = load_arcface(config.arcface) if config.arcface else None
    targets, names = _read_images(config, G.resolution)
    from .. import parallel
    print(parallel.describe(parallel.data_mesh(), parallel.rows_per_device(len(names)), "images"), flush=True)
    if E is None:
        print(f"no encoder: starting {len(names)} images from the mean W")
        w0 = np.asarray(invert.mean_w_plus(G, len(names)))
    else:
        from ..memory import memory_args
        x = targets if E.input_size == G.resolution else _read_images(config, E.input_size)[0]
        w0 = parallel.map_batched(_encode_rows, E, np.asarray(x, np.float32),
                                  parallel.rows_per_device(config.batch_size), what="images",
                                  **memory_args(config))
        print(f"encoded {len(names)} images with {E!r}")
    w, m = invert.refine(G, w0, targets, steps, lr=float(r.lr), pixel_loss=r.pixel_loss,
                         l2_lambda=float(r.l2_lambda), id_lambda=float(r.id_lambda), arc=arc,
                         space=r.space, noise_mode=config.noise_mode,
                         report_every=int(config.report_every) if steps else 0)
    if r.space == "wplus":
        recon = np.asarray(G.synthesis(w, noise_mode=config.noise_mode))
    else:
        recon = np.asarray(G.synthesis_from_s(w, noise_mode=config.noise_mode))
    from ..parallel import is_writer
    if not is_writer():  # several processes: process 0 writes
        return {}
    return write_outputs(pathlib.Path(workdir), names, targets, recon, w, w0, m, arc, steps, enc_spec, gen_spec,
                         r.space)


def write_outputs(out, names, targets, recon, w, w0, m, arc, steps, enc_spec, gen_spec, space) -> dict:
    from ..models.arcface import identity_similarity
    out.mkdir(parents=True, exist_ok=True)
    n = len(names)
    if space == "wplus":
        io_utils.write_npy(out / "latents.npy", np.asarray(w, np.float32))
    else:
        io_utils.write_npy(out / "latents.npy", np.asarray(w0, np.float32))  # the unrefined W+ ...
        io_utils.write_npz(out / "styles.npz", **{k: np.asarray(v, np.float32) for k, v in w.items()})  # ... and S
    io_utils.write_npz(out / "images.npz", source=targets.astype(np.float32), reconstruction=recon.astype(np.float32))
    cells = np.stack([targets, recon], axis=1).reshape(-1, *recon.shape[1:])
    io_utils.save_grid(out / "grid.png", cells, rows=n, cols=2)
    records = [{"name": names[i], "mse_before_refinement": float(m["mse_before"][i]),
                "mse": float(m["mse_after"][i])} for i in range(n)]
    if arc is not None:
        sim = np.asarray(identity_similarity(arc, recon, targets))
        for r, s in zip(records, sim):
            r["identity_similarity"] = float(s)
    summary = {"encoder": None if enc_spec is None else str(enc_spec), "generator": str(gen_spec),
               "refine_steps": steps, "space": space, "num_images": n, "seconds_refine": float(m["seconds"]),
               "mean_mse_before_refinement": float(np.mean(m["mse_before"])),
               "mean_mse": float(np.mean(m["mse_after"])), "images": records}
    io_utils.write_json(out / "metrics.json", summary)
    print(f"wrote {out}/latents.npy, grid.png, images.npz, metrics.json; mean MSE "
          f"{summary['mean_mse_before_refinement']:.4f} -> {summary['mean_mse']:.4f} ({steps} refinement steps)")
    return summary
