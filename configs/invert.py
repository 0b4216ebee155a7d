"""Invert image files to W+ with an e4e/pSp encoder, optionally refined by optimisation.

Run (real weights: an official e4e checkpoint holds the encoder and its generator; photos must be aligned
FFHQ-style 256-px face crops, or give dlib's predictor to align them):
    python main.py --mode=invert --workdir=runs/inv --config.encoder=e4e_ffhq_encode.pt \
        --config.images='photos/*.png' [--config.refine_steps=200] [--config.arcface=model_ir_se50.pth] \
        [--config.align_landmarks_model=shape_predictor_68_face_landmarks.dat]
Offline (shapes world): --config.images='my_shapes/*.png' with no encoder uses the shipped shapes encoder when
the package has one, otherwise starts from the mean W and refines (refine_steps defaults to 200 then).
Outputs: latents.npy (N, num_ws, w_dim), grid.png (rows: source | reconstruction), images.npz (`source`,
`reconstruction`, NHWC at the generator's resolution), metrics.json (per-image names, MSE before/after
refinement, identity similarity when ArcFace is given).
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    c.images = config_dict.placeholder(str)      # glob, folder or file (required)
    c.encoder = config_dict.placeholder(str)     # e4e/pSp .pt, converted folder, "shapes", or "none" (mean W)
    c.generator = config_dict.placeholder(str)   # default: the encoder's .pt (its decoder) or "shapes"
    c.align_landmarks_model = config_dict.placeholder(str)  # dlib 68-landmark predictor: align faces first
    c.refine_steps = config_dict.placeholder(int)  # default 0 with an encoder, 200 from the mean W
    c.refine_lr = 0.01
    c.pixel_loss = "mse"                         # mse | l1
    c.l2_lambda = 0.0                            # pull toward the encoder's W+
    c.id_lambda = 0.0                            # ArcFace identity loss weight (needs --config.arcface)
    c.arcface = config_dict.placeholder(str)     # model_ir_se50.pth or converted folder
    c.space = "wplus"                            # wplus | s (refinement variables)
    c.noise_mode = "const"                       # const | none
    c.batch_size = 8                             # encoder batch
    c.report_every = 50
    return c
