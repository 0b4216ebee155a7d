"""Invert image files to W+ with an e4e/pSp encoder, optionally refined by optimisation.

Presets (`--config=configs/invert.py:PRESET`):
  shapes (default): offline. With no --config.encoder the shipped shapes encoder is used when the package has
  one, otherwise the images start from the mean W; 200 refinement steps (six fresh renders, seeds
  910000-910005: mean MSE 0.0735 (encoder) -> 0.0026, 15 s on a 2-core CPU):
    python main.py --mode=invert --workdir=runs/inv --config.images='my_shapes/*.png'
  official: an official e4e checkpoint holds the encoder and its generator (its decoder); photos must be
  FFHQ-aligned 256-px face crops, or give dlib's predictor to align them; no refinement unless asked:
    python main.py --mode=invert --config=configs/invert.py:official --workdir=runs/inv \\
        --config.encoder=e4e_ffhq_encode.pt --config.images='photos/*.png' [--config.refine.steps=200] \\
        [--config.arcface=model_ir_se50.pth --config.refine.id_lambda=0.1] \\
        [--config.align_landmarks_model=shape_predictor_68_face_landmarks.dat]
Outputs: latents.npy (N, num_ws, w_dim) (a --config.latents file for the editing modes), grid.png (rows:
source | reconstruction), images.npz (`source`, `reconstruction`, NHWC at the generator's resolution),
metrics.json (per-image names, MSE before/after refinement, identity similarity when ArcFace is given).
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    c.images = config_dict.placeholder(str)      # glob ('photos/*.png'), folder or file (required)
    # e4e/pSp .pt, a folder from checkpoints_convert/convert_encoder.py, "shapes", or "none" (start from the
    # mean W); unset: the shipped shapes encoder if there is one, else "none" (official preset: required)
    c.encoder = config_dict.placeholder(str)
    c.generator = config_dict.placeholder(str)   # unset: the encoder's .pt (its decoder.*), else "shapes"
    c.arcface = config_dict.placeholder(str)     # model_ir_se50.pth or converted folder (identity loss/metric)
    c.align_landmarks_model = config_dict.placeholder(str)  # dlib 68-landmark predictor: align faces first
    c.batch_size = 8                             # encoder images per call over all devices
    common.memory(c)
    c.noise_mode = "const"                       # const | none
    c.refine = config_dict.ConfigDict()
    c.refine.steps = 200 if preset == "shapes" else 0
    c.refine.lr = 0.01
    c.refine.pixel_loss = "mse"                  # mse | l1
    c.refine.l2_lambda = 0.0                     # pull toward the encoder's W+
    c.refine.id_lambda = 0.0                     # ArcFace identity loss weight (needs --config.arcface)
    c.refine.space = "wplus"                     # wplus | s (refinement variables)
    c.report_every = 50
    c.require_encoder = preset == "official"    # official: --config.encoder must be given
    return c
