#!/usr/bin/env python3
"""Convert the TreB1eN / pSp ArcFace IR-SE50 weights (``model_ir_se50.pth``) to a JAX folder.

    python checkpoints_convert/convert_arcface.py --src=model_ir_se50.pth --dst=DIR [--overwrite]

DIR then holds ``params/`` (orbax, NHWC/HWIO layout), ``config.json`` and ``manifest.json``
(written by ``styleclip_jax.checkpoints.save_params``); load it with
``styleclip_jax.models.arcface.load_arcface(DIR)``.  Needs PyTorch (``pip install 'styleclip_jax[convert]'``).
"""
import argparse
import pathlib
import sys

try:
    import styleclip_jax  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="model_ir_se50.pth (plain PyTorch state dict)")
    ap.add_argument("--dst", required=True, help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing converted folder")
    args = ap.parse_args(argv)

    from styleclip_jax.models.arcface import load_arcface, save_arcface

    src = pathlib.Path(args.src)
    if not src.is_file():
        ap.error(f"--src {src}: file not found")
    if pathlib.Path(args.dst).exists() and not args.overwrite:
        print(f"error: --dst {args.dst}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    try:
        arc = load_arcface(src)
        out = save_arcface(args.dst, arc, overwrite=args.overwrite)
    except (ValueError, ImportError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {arc!r} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
