"""The interactive editor: a local web page with live alpha/beta sliders over global directions and mappers.

Needs the extra: pip install -e '.[app]'   (gradio 5.x; see README "Interactive editor")
Presets (`--config=configs/app.py:PRESET`):
  shapes (default): the shipped offline world (generator, CLIP, S statistics, fs3); ready after a 15 s warm-up
  on a 2-core CPU; seed 0 (a red square) with "a shape" -> "a blue shape" at alpha 3.1 turns blue (docs/app.png):
    python main.py --mode=app --workdir=runs/app            # serves http://127.0.0.1:7860
  official: real weights (as --mode=global_direction:official; the fs3 sweep runs first if not cached):
    python main.py --mode=app --config=configs/app.py:official --workdir=runs/app --config.generator=ffhq.pkl
The server binds 127.0.0.1; any other --config.host also needs --config.allow_remote=True. Study exports and
downloads are written under the workdir.
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    common.models(c, preset, clip_preprocess="official" if preset == "shapes" else "normalized")
    # the page's starting values (everything is changed in the page)
    common.global_edit(c, preset)
    c.seed = 0
    c.truncation_psi = 0.7
    c.latents = config_dict.placeholder(str)   # a W+ file whose latents the page offers as sources
    c.encoder = "shapes" if preset == "shapes" else config_dict.placeholder(str)  # for uploaded photos
    # uploads: invert.refine steps after the encoder (from the mean W without one); compiled at warm-up.
    # shapes: 50 steps at lr 0.05 bring seed 0 from MSE 0.121 (mean W) to 0.0006 (measured, 2-core CPU, 0.1 s)
    c.refine_steps = 50 if preset == "shapes" else 0
    c.refine_lr = 0.05 if preset == "shapes" else 0.01
    c.mappers = config_dict.placeholder(str)   # JSON list of mapper paths offered in the mapper tab
    # the server
    c.host = "127.0.0.1"
    c.port = 7860
    c.allow_remote = False                     # required for any host other than localhost
    c.max_upload_mb = 10
    c.channels_shown = 20                      # rows of the channel table
    common.precompute(c)
    return c
