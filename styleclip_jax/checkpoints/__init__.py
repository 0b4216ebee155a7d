"""Checkpoint I/O: reading official PyTorch checkpoints safely and the package's own orbax format.

params_io (orbax save/load with a JSON config and manifest); stylegan2 (generator checkpoints: format
detection and dispatch) over nvlabs (NVlabs .pkl), rosinality (rosinality .pt) and generator_params
(the param layout both produce, checked against models.generator.param_shapes); safe_pickle (the
allow-list unpickler, the one place a pickle is read, bounded by the file size) and torch_legacy
(tensors inside pickles, without torch); torch_pt (the one torch.load(weights_only=True) reader);
latents (W+ files).
"""
from .params_io import (CONFIG_FILE, EXTRA_FILE, MANIFEST_FILE, PARAMS_SUBDIR, CheckpointError,  # noqa: F401
                        CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError, load_extra,
                        load_params, read_json, save_params, write_json)
