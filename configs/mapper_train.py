"""Train StyleCLIP latent mappers (method 2): one mapper per prompt, K prompts in one program.

Run (offline shapes world; ~1 min on a 2-core CPU, 24 s of it training; shapes-world defaults Adam,
l2_lambda 0.2, 400 steps, measured to take the green share of 32 held-out latents' shape pixels from 0.04
to 0.82; the official Ranger/0.8 barely move this tiny world, see styleclip_jax/jobs/mapper_train.py):
    python main.py --mode=mapper_train --workdir=runs/mapper_green
Several prompts at once (K independent mappers, vmapped; each equals its single-prompt run):
    python main.py --mode=mapper_train --workdir=runs/mappers --config.prompts='["a green shape", "a red shape"]'
Real weights (official defaults: Ranger lr 0.5, batch 2, 50k steps; e4e inversions of CelebA-HQ):
    python main.py --mode=mapper_train --workdir=runs/purple --config.generator=stylegan2-ffhq-config-f.pt \
        --config.clip_model=openai/clip-vit-base-patch32 --config.prompts='["a person with purple hair"]' \
        --config.latents_train=train_faces.pt --config.latents_test=test_faces.pt \
        [--config.arcface=model_ir_se50.pth]        # enables the ID term with the default id_lambda 0.1
Re-running the same command resumes from the last checkpoint (also after kill -9) and finishes with
exactly the params of an uninterrupted run. Outputs in --workdir: best/<k>/ and final/<k>/ (mapper
folders for `sc.load_mapper` and --mode=mapper_infer), metrics.jsonl, samples/step_*.png (rows:
test latents; columns: source | edit per prompt), checkpoints/ (orbax), run.json.
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    # models
    c.generator = "shapes"                      # NVlabs .pkl, rosinality .pt, converted folder, or "shapes"
    c.clip_model = "shapes"                     # hub name or folder; "shapes" = shipped tiny CLIP
    c.clip_preprocess = "official"              # official | normalized | resize
    c.arcface = config_dict.placeholder(str)    # model_ir_se50.pth or converted folder: enables the ID loss
    c.prompts = '["a green shape"]'             # JSON list: K prompts -> K mappers trained together
    # data: W+ latents files (.pt/.npy/.npz, (N, num_ws, w_dim)) or samples of the generator
    c.latents_train = config_dict.placeholder(str)
    c.latents_test = config_dict.placeholder(str)  # if unset: sampled (seed data_seed + 1)
    c.train_size = 5000                         # sampled latents (when no file is given)
    c.test_size = 1000
    c.truncation_psi = 0.7                      # sampling truncation toward the average w
    c.data_seed = 0
    c.seed = 0                                  # mapper init and data order
    # mapper
    c.mapper_type = "LevelsMapper"              # LevelsMapper | SingleMapper
    c.no_coarse_mapper = False
    c.no_medium_mapper = False
    c.no_fine_mapper = False
    c.pixelnorm_axis = "rows"                   # rows = official PixelNorm over the w+ rows; features
    # optimisation (official defaults)
    c.optimizer = config_dict.placeholder(str)  # ranger | adam; default: ranger (official), adam for the shapes world
    c.lr = 0.5
    c.batch_size = 2
    c.test_batch_size = 8
    c.clip_lambda = 1.0
    c.l2_lambda = config_dict.placeholder(float)  # default: 0.8 (official); 0.2 for the shapes world
    c.id_lambda = config_dict.placeholder(float)  # default: 0.1 with --config.arcface, else 0 (no ID term)
    c.max_steps = config_dict.placeholder(int)  # default: 50000 (official); 400 for the shapes world
    c.noise_mode = "const"                      # const = official randomize_noise=False
    c.precision = "float32"                     # generator convs: float32 | bfloat16 (bf16 inputs, f32 accumulation)
    # bookkeeping
    c.log_every = 50
    c.val_every = 2000
    c.ckpt_every = 1000
    c.image_every = 100
    c.num_samples = 4
    c.max_to_keep = 2
    c.tensorboard = True                        # only if tensorboardX / torch.utils.tensorboard is importable
    return c
