#!/usr/bin/env python3
"""Convert an official e4e / pSp checkpoint (``e4e_ffhq_encode.pt``) to a JAX encoder folder.

    python checkpoints_convert/convert_encoder.py --src=e4e_ffhq_encode.pt --dst=DIR [--overwrite]

DIR then holds ``params/`` (orbax: the encoder params and ``latent_avg``), ``config.json`` (encoder type,
stages, W+ rows, input size, start_from_latent_avg) and ``manifest.json``; ``sc.load_encoder(DIR)`` reads it
without torch.  The checkpoint's ``decoder.*`` generator is not written here: ``sc.load_generator`` reads it
from the ``.pt`` directly.  Needs PyTorch (``pip install 'styleclip_jax[convert]'``).
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
    ap.add_argument("--src", required=True, help="official e4e/pSp checkpoint (.pt)")
    ap.add_argument("--dst", required=True, help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing converted folder")
    args = ap.parse_args(argv)

    from styleclip_jax.checkpoints.e4e import load_encoder, save_encoder
    from styleclip_jax.errors import StyleClipError

    if pathlib.Path(args.dst).exists() and not args.overwrite:
        print(f"error: --dst {args.dst}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    try:
        E = load_encoder(pathlib.Path(args.src))
        out = save_encoder(args.dst, E, extra={"source": str(args.src)}, overwrite=args.overwrite)
    except (StyleClipError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {E!r} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
