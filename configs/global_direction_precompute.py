"""Only the global-direction precomputation: StyleSpace statistics and the channel-relevance sweep (fs3).

Run: python main.py --mode=global_direction_precompute --workdir=runs/fs3 --config.generator=ffhq.pkl \
         --config.clip_model=openai/clip-vit-base-patch32
Expected runtime: FFHQ 1024, 6048 channels x 100 images: target <= 10 min on one H100 (4 h in the paper),
not yet measured; the shapes world (336 channels x 100 images): 2 min on a 2-core CPU (measured). Killed runs resume from their finished blocks. Writes fs3.npy and
stats.npz to the cache (next to the checkpoint, or --config.cache_dir) and copies them to --workdir.
Multi-host TPU: add --distributed; every host runs the same command, only process 0 writes.
"""
from configs.global_direction import get_config as _base


def get_config():
    return _base()
