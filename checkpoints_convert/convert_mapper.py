#!/usr/bin/env python3
"""Convert a published StyleCLIP mapper checkpoint (.pt) into a styleclip_jax checkpoint.

    python checkpoints_convert/convert_mapper.py --src=purple_hair.pt --dst=ckpt/mapper_purple

The source is ``{'state_dict': {'mapper.*', 'decoder.*'}, 'opts': {...}}`` as written by
``mapper/training/coach.py``. Only the ``mapper.*`` tensors are kept (the ``decoder.*`` copy of
StyleGAN2 is counted and dropped: convert the generator separately). The mapper config
(:class:`styleclip_jax.models.mapper.MapperConfig`, with ``pixelnorm_axis="rows"`` = official
behaviour) is stored next to the params with ``styleclip_jax.checkpoints.save_params`` (read back with
``load_params(directory) -> (params, config)``; ``MapperConfig.from_dict(config)``).
A bad file or flag prints one line ``error: <file or flag>: <what>`` and exits non-zero (``--debug``
shows the traceback).
"""
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _cli  # noqa: E402

sys.path.pop(0)


def _convert(args) -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from styleclip_jax import checkpoints
    from styleclip_jax.models import mapper as mapper_nets

    if pathlib.Path(args.dst).exists() and not args.overwrite:
        print(f"error: --dst {args.dst}: already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    params, config, info = mapper_nets.read_styleclip_mapper_pt(args.src, args.pixelnorm_axis,
                                                                return_info=True)
    config_dict = {"kind": "styleclip_mapper", **config.to_dict()}
    opts = {str(k): v for k, v in info["opts"].items() if v is None or isinstance(v, (str, int, float, bool))}
    extra = {"source": os.path.basename(args.src), "converter": "checkpoints_convert/convert_mapper.py",
             "num_decoder_tensors_dropped": info["num_decoder_tensors"], "official_opts": opts}
    checkpoints.save_params(str(args.dst), params, config_dict, extra=extra, overwrite=args.overwrite)
    n = sum(int(v.size) for v in mapper_nets.flatten_params(params).values())
    print(f"{config.mapper_type}: {info['num_mapper_tensors']} tensors, {n} values -> {args.dst}; "
          f"dropped {info['num_decoder_tensors']} decoder tensors ({info['num_decoder_values']} values)")
    return 0


def main(argv=None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n")[1])
    ap.add_argument("--src", required=True, help="official mapper checkpoint (.pt)")
    ap.add_argument("--dst", required=True, help="output directory")
    ap.add_argument("--pixelnorm_axis", default="rows", choices=["rows", "features"],
                    help="'rows' reproduces the official mapper (default)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --dst")
    args = ap.parse_args(argv)
    _cli.use_checkout()
    return _cli.run(_convert, args, args.src)


if __name__ == "__main__":
    sys.exit(main())
