"""Train StyleCLIP latent mappers (method 2): one mapper per prompt, K prompts in one program.

Presets (`--config=configs/mapper_train.py:PRESET`):
  shapes (default): Adam lr 0.2, l2_lambda 0.3, batch 4, 1000 steps (the official Ranger / 0.8 barely move
  this tiny world). Measured (`python scripts/measure_shapes_edits.py --only mapper`): 31 of 32 held-out latents
  green-dominant with their shape kept (with the CLIP shipped before: 32 of 32; l2 0.05 / 2.0 gave 75 % / 34 %,
  benchmarks/results/2026-12-07_cpu/shapes_hue_layer.txt). About 50 s on a 2-core CPU:
    python main.py --mode=mapper_train --workdir=runs/mapper_green
  Several prompts at once (K independent mappers, vmapped; each equals its single-prompt run):
    python main.py --mode=mapper_train --workdir=runs/mappers --config.prompts='["a green shape", "a red shape"]'
  official: StyleCLIP's defaults (Ranger lr 0.5, batch 2, 50k steps, l2 0.8; e4e inversions of CelebA-HQ):
    python main.py --mode=mapper_train --config=configs/mapper_train.py:official --workdir=runs/purple \\
        --config.generator=stylegan2-ffhq-config-f.pt --config.prompts='["a person with purple hair"]' \\
        --config.data.latents_train=train_faces.pt --config.data.latents_test=test_faces.pt \\
        [--config.arcface=model_ir_se50.pth]     # enables the ID term (loss.id_lambda, default 0.1)
Re-running the same command resumes from the last checkpoint (also after kill -9) and finishes with exactly
the params of an uninterrupted run; checkpoints are written every log.ckpt_every steps, at least every 10 %
of the run and every log.ckpt_minutes of wall time. Outputs in --workdir: best/<k>/ and final/<k>/ (mapper
folders for `sc.load_mapper` and --mode=mapper_infer), metrics.jsonl, samples/step_*.png (rows: test
latents; columns: source | edit per prompt), checkpoints/ (orbax), run.json.
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    shapes = preset == "shapes"
    c = config_dict.ConfigDict()
    common.models(c, preset)
    c.prompts = '["a green shape"]' if shapes else '["a person with purple hair"]'  # JSON list: K mappers
    c.seed = 0                                  # mapper init and data order
    c.noise_mode = "const"                      # const = official randomize_noise=False
    c.precision = "float32"                     # generator convs: float32 | bfloat16 (bf16 inputs, f32 accumulation)
    c.remat = False                             # recompute inside synthesis layers in the backward pass: less memory
    common.memory(c)                            # a step that does not fit fails before training (needed vs available)
    # data: W+ latents files (.pt/.npy/.npz, (N, num_ws, w_dim)) or samples of the generator
    c.data = config_dict.ConfigDict()
    c.data.latents_train = config_dict.placeholder(str)
    c.data.latents_test = config_dict.placeholder(str)  # if unset: sampled (seed data.seed + 1)
    c.data.train_size = 5000                    # sampled latents (when no file is given)
    c.data.test_size = 1000
    c.data.truncation_psi = 0.7                 # sampling truncation toward the average w
    c.data.seed = 0
    c.mapper = config_dict.ConfigDict()
    c.mapper.type = "LevelsMapper"              # LevelsMapper | SingleMapper
    c.mapper.no_coarse = False
    c.mapper.no_medium = False
    c.mapper.no_fine = False
    c.mapper.pixelnorm_axis = "rows"            # rows = official PixelNorm over the w+ rows; features
    c.optim = config_dict.ConfigDict()
    c.optim.optimizer = "adam" if shapes else "ranger"
    c.optim.lr = 0.2 if shapes else 0.5         # shapes world: Adam (see the docstring for the measured choice)
    c.optim.batch_size = 4 if shapes else 2
    c.optim.max_steps = 1000 if shapes else 50_000
    c.loss = config_dict.ConfigDict()
    c.loss.clip_lambda = 1.0
    c.loss.l2_lambda = 0.3 if shapes else 0.8
    c.loss.id_lambda = 0.1                      # used only when --config.arcface is given
    c.log = config_dict.ConfigDict()
    c.log.every = 50
    c.log.val_every = 2000
    c.log.test_batch_size = 8
    c.log.ckpt_every = 1000                     # also at least every 10 % of max_steps ...
    c.log.ckpt_minutes = 5.0                    # ... and every this many minutes of wall time
    c.log.image_every = 100
    c.log.num_samples = 4
    c.log.max_to_keep = 2
    c.log.tensorboard = True                    # only if tensorboardX / torch.utils.tensorboard is importable
    return c
