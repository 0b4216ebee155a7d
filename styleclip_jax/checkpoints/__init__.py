"""Checkpoint I/O: reading official PyTorch checkpoints safely and the package's own orbax format.

params_io (orbax save/load with a JSON config and manifest), stylegan2 (NVlabs .pkl without executing
code, rosinality .pt), latents (W+ files).
"""
from .params_io import (CONFIG_FILE, EXTRA_FILE, MANIFEST_FILE, PARAMS_SUBDIR, CheckpointError,  # noqa: F401
                        CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError, load_extra,
                        load_params, read_json, save_params, write_json)
