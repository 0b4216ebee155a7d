"""Only the global-direction precomputation: StyleSpace statistics and the channel-relevance sweep (fs3).

Presets as in configs/global_direction.py. Killed runs resume from their finished blocks.
    python main.py --mode=global_direction_precompute --workdir=runs/fs3      # shapes world: cached, ~5 s
    python main.py --mode=global_direction_precompute --config=configs/global_direction_precompute.py:official \\
        --workdir=runs/fs3 --config.generator=ffhq.pkl
Runtime: the shapes world's sweep (416 channels x 100 images) takes 2 min 43 s on a 2-core CPU (measured on
a generator of the shipped size with an encoder training beside it, --config.cache_dir=EMPTY_DIR); FFHQ 1024
(6048 channels x 100 images): issue #7's target <= 10 min on one H100, not measured (no device here). Writes fs3.npy and stats.npz to the cache (next to the checkpoint, or
--config.cache_dir) and copies them to --workdir. Multi-host: add --distributed; only process 0 writes.
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    common.models(c, preset, clip_preprocess="official" if preset == "shapes" else "normalized")
    common.precompute(c)
    return c
