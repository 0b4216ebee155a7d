#!/usr/bin/env python3
"""Convert a published StyleCLIP mapper checkpoint (.pt) into a styleclip_jax checkpoint.

    python checkpoints_convert/convert_mapper.py --src=purple_hair.pt --dst=ckpt/mapper_purple

The source is ``{'state_dict': {'mapper.*', 'decoder.*'}, 'opts': {...}}`` as written by
``mapper/training/coach.py``. Only the ``mapper.*`` tensors are kept (the ``decoder.*`` copy of
StyleGAN2 is counted and dropped: convert the generator separately). The mapper config
(:class:`styleclip_jax.models.mapper.MapperConfig`, with ``pixelnorm_axis="rows"`` = official
behaviour) is stored next to the params.

Writing uses ``styleclip_jax.checkpoints.save_params(directory, params, config, extra=...)`` (read
back with ``load_params(directory) -> (params, config)``; ``MapperConfig.from_dict(config)``).
If that module is absent, a minimal fallback writes an orbax ``StandardCheckpointer`` save of the
params in ``DST/params`` plus ``DST/config.json`` / ``DST/extra.json``.
"""
import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def save(dst, params, config_dict, extra=None, overwrite=False):
    """Write params + config (+ provenance); returns a short description of the format used."""
    try:
        from styleclip_jax import checkpoints  # the project's checkpoint format
    except ImportError:
        checkpoints = None
    if checkpoints is not None and hasattr(checkpoints, "save_params"):
        checkpoints.save_params(str(dst), params, config_dict, extra=extra, overwrite=overwrite)
        return "styleclip_jax.checkpoints.save_params"
    import orbax.checkpoint as ocp

    dst = pathlib.Path(dst).resolve()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst}: already exists; pass --overwrite to replace it")
    dst.mkdir(parents=True, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(dst / "params", params, force=True)
    ckptr.wait_until_finished()
    (dst / "config.json").write_text(json.dumps(config_dict, indent=1))
    if extra is not None:
        (dst / "extra.json").write_text(json.dumps(extra, indent=1, default=str))
    return "fallback orbax StandardCheckpointer (params/) + config.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--src", required=True, help="official mapper checkpoint (.pt)")
    ap.add_argument("--dst", required=True, help="output directory")
    ap.add_argument("--pixelnorm_axis", default="rows", choices=["rows", "features"],
                    help="'rows' reproduces the official mapper (default)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --dst")
    args = ap.parse_args(argv)

    from styleclip_jax.models import mapper as mapper_nets

    params, config, info = mapper_nets.read_styleclip_mapper_pt(args.src, args.pixelnorm_axis,
                                                                return_info=True)
    config_dict = {"kind": "styleclip_mapper", **config.to_dict()}
    opts = {k: v for k, v in info["opts"].items() if v is None or isinstance(v, (str, int, float, bool))}
    extra = {"source": os.path.basename(args.src), "converter": "checkpoints_convert/convert_mapper.py",
             "num_decoder_tensors_dropped": info["num_decoder_tensors"], "official_opts": opts}
    how = save(args.dst, params, config_dict, extra=extra, overwrite=args.overwrite)
    n = sum(int(v.size) for v in mapper_nets.flatten_params(params).values())
    print(f"{config.mapper_type}: {info['num_mapper_tensors']} tensors, {n} values -> {args.dst} ({how}); "
          f"dropped {info['num_decoder_tensors']} decoder tensors ({info['num_decoder_values']} values)")


if __name__ == "__main__":
    main()
