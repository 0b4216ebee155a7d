#!/usr/bin/env python3
"""Convert the TreB1eN / pSp ArcFace IR-SE50 weights (``model_ir_se50.pth``) to a JAX folder.

    python checkpoints_convert/convert_arcface.py --src=model_ir_se50.pth --dst=DIR [--overwrite]

DIR then holds ``params/`` (orbax, NHWC/HWIO layout), ``config.json`` and ``manifest.json``
(written by ``styleclip_jax.checkpoints.save_params``); load it with
``styleclip_jax.models.arcface.load_arcface(DIR)``.  Needs PyTorch (``pip install 'styleclip_jax[convert]'``).
A bad file or flag prints one line ``error: <file or flag>: <what>`` and exits non-zero (``--debug``
shows the traceback).
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _cli  # noqa: E402

sys.path.pop(0)


def _convert(args) -> int:
    from styleclip_jax.models.arcface import load_arcface, save_arcface

    src = pathlib.Path(args.src)
    if not src.is_file():
        print(f"error: --src {src}: file not found", file=sys.stderr)
        return 1
    if pathlib.Path(args.dst).exists() and not args.overwrite:
        print(f"error: --dst {args.dst}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    arc = load_arcface(src)
    out = save_arcface(args.dst, arc, overwrite=args.overwrite)
    print(f"wrote {arc!r} to {out}")
    return 0


def main(argv=None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="model_ir_se50.pth (plain PyTorch state dict)")
    ap.add_argument("--dst", required=True, help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing converted folder")
    args = ap.parse_args(argv)
    _cli.use_checkout()
    return _cli.run(_convert, args, args.src)


if __name__ == "__main__":
    sys.exit(main())
