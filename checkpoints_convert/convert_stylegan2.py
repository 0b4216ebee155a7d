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
A bad file or flag prints one line ``error: <file or flag>: <what>`` and exits non-zero (``--debug``
shows the traceback).
"""
from __future__ import annotations

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _cli  # noqa: E402

sys.path.pop(0)


def _import_package():
    _cli.use_checkout()
    from styleclip_jax import checkpoints
    from styleclip_jax.checkpoints import stylegan2
    return checkpoints, stylegan2


def convert(src, dst, *, network: str = "G_ema", overwrite: bool = False, fmt: str | None = None):
    """Convert ``src`` into the checkpoint directory ``dst``; returns ``(params, config)``."""
    checkpoints, stylegan2 = _import_package()
    src = pathlib.Path(src)
    fmt = fmt or stylegan2.detect_format(src)
    if fmt == "nvlabs_pkl":
        sd, kwargs = stylegan2.read_nvlabs_pkl(src, key=network)
        params, config = stylegan2.nvlabs_to_params(sd, kwargs, source=f"{src} [{network}]")
        extra = {"source_file": src.name, "source_format": fmt, "network": network,
                 "init_kwargs": kwargs}
    elif fmt == "rosinality_pt":
        sd, latent_avg = stylegan2.read_rosinality_pt(src)
        params, config = stylegan2.rosinality_to_params(sd, latent_avg, source=str(src))
        extra = {"source_file": src.name, "source_format": fmt}
    else:
        raise checkpoints.CheckpointFormatError(f"{src}: expected an NVlabs .pkl or a rosinality .pt/.pth file, "
                                                f"got a {fmt!r} folder (it is already converted)")
    config = dict(config, kind="stylegan2_generator")
    checkpoints.save_params(dst, params, config, extra=extra, overwrite=overwrite)
    return params, config


def _report(args) -> int:
    params, config = convert(args.src, args.dst, network=args.network, overwrite=args.overwrite, fmt=args.format)
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


def main(argv=None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="NVlabs .pkl or rosinality .pt/.pth checkpoint")
    ap.add_argument("--dst", required=True, help="output checkpoint directory (must not exist)")
    ap.add_argument("--format", choices=["nvlabs_pkl", "rosinality_pt"], default=None,
                    help="override the detected source format")
    ap.add_argument("--network", default="G_ema", help="network of an NVlabs snapshot to convert (default G_ema)")
    ap.add_argument("--overwrite", action="store_true", help="replace --dst if it exists")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return _cli.run(_report, args, args.src)


if __name__ == "__main__":
    sys.exit(main())
