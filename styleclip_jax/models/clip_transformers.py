"""The optional CLIP backend through ``transformers`` 4.x: ``FlaxCLIPModel`` and its tokenizers.

``load_clip(..., backend="transformers")`` calls :func:`load`; it needs ``pip install 'styleclip_jax[transformers]'``
(transformers>=4.40,<5: version 5 removed the Flax model classes). The returned module and tokenizer
offer the same calls as the native ones (``get_image_features``, ``get_text_features``, ``tok(texts, ...)``),
so everything else in the package treats both alike. This is the only module that imports transformers.
"""
from __future__ import annotations

import pathlib

from ..errors import CLIPLoadError
from ..checkpoints.hf_clip import NEEDED_FILES, hub_reachable

__all__ = ["load"]


def _load_tokenizer(source: str, **kw):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    errors = []
    for cls in (CLIPTokenizerFast, CLIPTokenizer):
        try:
            return cls.from_pretrained(source, **kw)
        except Exception as e:  # noqa: BLE001 - reported in one line below
            errors.append(f"{cls.__name__}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise OSError("; ".join(errors))


def _load_model(source: str, dtype, from_pt: bool | None, **kw):
    from transformers import FlaxCLIPModel

    options = [from_pt] if from_pt is not None else [False, True]
    errors = []
    for pt in options:
        try:
            if pt:  # transformers' PyTorch->Flax conversion needs an initialised model
                model = FlaxCLIPModel.from_pretrained(source, dtype=dtype, from_pt=True, **kw)
                return model, model.params  # same arrays as clip.params, not a second copy
            # _do_init=False: read the weights without a (slow, eager) random initialisation first;
            # the parameters are returned separately and the model object holds none.
            return FlaxCLIPModel.from_pretrained(source, dtype=dtype, _do_init=False, **kw)
        except Exception as e:  # noqa: BLE001
            from ..checkpoints import torch_pt  # torch's text would suggest weights_only=False: replaced
            errors.append(f"from_pt={pt}: {torch_pt.describe_error(e)}")
    raise OSError("; ".join(errors))


def load(name: str, folder: pathlib.Path | None, dtype, local_files_only: bool, from_pt: bool | None):
    """(FlaxCLIPModel, tokenizer, params) from a checked local ``folder`` or, when it is None, the hub name
    ``name`` (local cache first, then the hub when reachable). Raises CLIPLoadError in one line."""
    try:
        from transformers.utils import logging as hf_logging
        from transformers import FlaxCLIPModel  # noqa: F401 - gone in transformers 5
    except Exception as e:  # noqa: BLE001
        raise CLIPLoadError(f"backend='transformers' needs transformers 4.x with Flax support (pip install "
                            f"'styleclip_jax[transformers]'): {type(e).__name__}: {e}; or use backend='native'"
                            ) from None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if folder is not None:
            try:
                if from_pt is None:
                    from_pt = not (folder / "flax_model.msgpack").is_file()
                model, params = _load_model(str(folder), dtype, from_pt)
                return model, _load_tokenizer(str(folder)), params
            except Exception as e:  # noqa: BLE001
                raise CLIPLoadError(f"could not load CLIP from {folder}: {e}. "
                                    f"The folder needs {NEEDED_FILES}") from None
        attempts = [True] if local_files_only or not hub_reachable() else [True, False]
        errors = []
        for local_only in attempts:
            try:
                model, params = _load_model(name, dtype, from_pt, local_files_only=local_only)
                return model, _load_tokenizer(name, local_files_only=local_only), params
            except Exception as e:  # noqa: BLE001
                errors.append(f"{'cache' if local_only else 'hub'}: {str(e)[:300]}")
        online = "" if len(attempts) > 1 else " (the hub was not tried: offline or unreachable)"
        raise CLIPLoadError(
            f"could not load CLIP model {name!r}: not in the local Hugging Face cache and not downloadable{online}. "
            f"Either download it on a machine with network (e.g. `huggingface-cli download {name}`) into the HF cache "
            f"(~/.cache/huggingface, or $HF_HOME), or put a local folder with {NEEDED_FILES} somewhere and pass its "
            f"path. Details: {' | '.join(errors)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
