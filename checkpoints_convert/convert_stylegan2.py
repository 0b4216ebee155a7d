#!/usr/bin/env python3
"""Convert an official StyleGAN2 PyTorch checkpoint into a styleclip_jax checkpoint directory.

Sources (detected from the extension, else from the file's first bytes):
  * NVlabs stylegan2-ada-pytorch network pickle (.pkl): read without running any code from it;
    the 'G_ema' network is used unless --network says otherwise. torch is not needed.
  * rosinality stylegan2-pytorch checkpoint (.pt/.pth, {'g_ema': ..., 'latent_avg': ...}), e.g. the
    stylegan2-ffhq-config-f.pt used by StyleCLIP. Needs torch: pip install 'styleclip_jax[convert]'.

Example:
  python checkpoints_convert/convert_stylegan2.py --src=ffhq.pkl --dst=checkpoints/ffhq_jax

The destination holds an orbax checkpoint of the params plus config.json (with
"kind": "stylegan2_generator"); load it with styleclip_jax.checkpoints.stylegan2.load_generator_arrays(dst).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys


def _import_package():
    try:
        import styleclip_jax  # noqa: F401
    except ImportError:  # running from a source checkout without installing
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from styleclip_jax import checkpoints
    from styleclip_jax.checkpoints import stylegan2 as torch_io
    return checkpoints, torch_io


def convert(src, dst, *, network: str = "G_ema", overwrite: bool = False, fmt: str | None = None):
    """Convert ``src`` into the checkpoint directory ``dst``; returns ``(params, config)``."""
    checkpoints, torch_io = _import_package()
    src = pathlib.Path(src)
    fmt = fmt or torch_io.detect_format(src)
    if fmt == "nvlabs_pkl":
        sd, kwargs = torch_io.read_nvlabs_pkl(src, key=network)
        params, config = torch_io.nvlabs_to_params(sd, kwargs, source=f"{src} [{network}]")
        extra = {"source_file": src.name, "source_format": fmt, "network": network,
                 "init_kwargs": kwargs}
    elif fmt == "rosinality_pt":
        sd, latent_avg = torch_io.read_rosinality_pt(src)
        params, config = torch_io.rosinality_to_params(sd, latent_avg, source=str(src))
        extra = {"source_file": src.name, "source_format": fmt}
    else:
        raise SystemExit(f"error: {src}: expected an NVlabs .pkl or a rosinality .pt/.pth file, got {fmt!r}")
    config = dict(config, kind="stylegan2_generator")
    checkpoints.save_params(dst, params, config, extra=extra, overwrite=overwrite)
    return params, config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="NVlabs .pkl or rosinality .pt/.pth checkpoint")
    ap.add_argument("--dst", required=True, help="output checkpoint directory (must not exist)")
    ap.add_argument("--format", choices=["nvlabs_pkl", "rosinality_pt"], default=None,
                    help="override the detected source format")
    ap.add_argument("--network", default="G_ema", help="network of an NVlabs snapshot to convert (default G_ema)")
    ap.add_argument("--overwrite", action="store_true", help="replace --dst if it exists")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    checkpoints, _ = _import_package()
    try:
        params, config = convert(args.src, args.dst, network=args.network, overwrite=args.overwrite,
                                 fmt=args.format)
    except (checkpoints.CheckpointError, FileExistsError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    flat = []

    def walk(tree):
        for v in tree.values():
            walk(v) if isinstance(v, dict) else flat.append(v)
    walk(params)
    n_values = sum(int(a.size) for a in flat)
    print(f"converted {args.src} -> {args.dst}")
    print(f"  source: {config['source']}, resolution {config['img_resolution']}, z_dim {config['z_dim']}, "
          f"w_dim {config['w_dim']}, num_ws {config['num_ws']}, mapping layers {config['mapping_layers']}, "
          f"channel_base {config['channel_base']}, channel_max {config['channel_max']}, "
          f"conv_clamp {config['conv_clamp']}")
    print(f"  {len(flat)} arrays, {n_values:,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
