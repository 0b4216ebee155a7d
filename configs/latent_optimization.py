"""CLIP-guided latent optimisation (StyleCLIP method 1), many edits in one compiled program.

Run (offline shapes world, 8 sources x 300 steps, 24 s on a 2-core CPU): the tiny CLIP's similarity to "a
blue shape" rises, but none of seeds 0-7 (orange, red, yellow and one blue shape) changes colour; purple
sources do turn blue (README, "The shapes world"):
    python main.py --mode=latent_optimization --workdir=runs/lo
Real weights (official defaults: lr 0.1, 300 steps, l2 0.008; issue #5's target, not yet measured: <= 1 s
per 1024-px edit amortised over a batch of 32 on one H100):
    python main.py --mode=latent_optimization --workdir=runs/lo --config.generator=stylegan2-ffhq-config-f.pt \
        --config.clip_model=openai/clip-vit-base-patch32 --config.prompts='["a person with purple hair"]' \
        --config.seeds=0-3 [--config.arcface=model_ir_se50.pth --config.id_lambda=0.005]
Outputs: grid.png (rows: sources; columns: source | one edit per prompt), latents.npy (P, N, num_ws, w_dim)
(W+ space) or styles.npz (S space), images.npz (`source` (N,H,W,3), `edited` (P,N,H,W,3)), metrics.json.
"""
from ml_collections import config_dict


def get_config():
    c = config_dict.ConfigDict()
    c.generator = "shapes"
    c.clip_model = "shapes"                  # hub name or folder; "shapes" = shipped tiny CLIP
    c.clip_preprocess = "official"           # official | normalized | resize
    c.arcface = config_dict.placeholder(str)  # model_ir_se50.pth or converted folder (for id_lambda > 0)
    c.prompts = '["a blue shape"]'           # JSON list (or one plain prompt)
    c.pairing = "product"                    # product: every prompt x every source; zip: source i <-> prompt i
    c.seeds = "0-7"                          # sources from seeds (mapped with truncation_psi) ...
    c.latents = config_dict.placeholder(str)  # ... or a latents file (.npy/.npz/.pt, (N, num_ws, w_dim))
    c.truncation_psi = 0.7
    c.mode = "edit"                          # edit | free_generation
    c.space = "wplus"                        # wplus | s
    c.lr = config_dict.placeholder(float)    # default: 0.1 (official); 0.01 for the shapes world
    c.steps = 300
    c.l2_lambda = 0.008
    c.id_lambda = 0.0
    c.report_every = 50
    c.precision = "float32"                  # generator convs: float32 | bfloat16 (bf16 inputs, f32 accumulation)
    return c
