"""Only the global-direction precomputation: StyleSpace statistics and the channel-relevance sweep (fs3).

Presets as in configs/global_direction.py. Killed runs resume from their finished blocks.
    python main.py --mode=global_direction_precompute --workdir=runs/fs3      # shapes world: cached, ~5 s
    python main.py --mode=global_direction_precompute --config=configs/global_direction_precompute.py:official \\
        --workdir=runs/fs3 --config.generator=ffhq.pkl
Runtime: the shipped shapes world's statistics and sweep (224 channels x 100 images) take 81-99 s on a 2-core CPU
(measured with the shipped cache emptied); FFHQ 1024
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
