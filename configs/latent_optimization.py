"""CLIP-guided latent optimisation (StyleCLIP method 1), many edits in one compiled program.

Presets (`--config=configs/latent_optimization.py:PRESET`):
  shapes (default): the shipped offline world, lr 0.03 and l2_lambda 0.003 (the tiny CLIP's cosines span only
  a few hundredths, so the official L2 0.008 at lr 0.1 holds most samples back, and weaker L2s grow the shapes).
  Measured (scripts/measure_shapes_edits.py --only lo): toward "a blue shape", 41 of the 50 non-blue samples of
  seeds 0-59 become blue-dominant with their shape kept (82 %; lr/L2 0.02-0.04 / 0.003-0.004 give 80-82 %,
  benchmarks/results/2026-12-07_cpu/shapes_clip_tail.txt); 8 sources x 300 steps take about 25 s on a 2-core CPU:
    python main.py --mode=latent_optimization --workdir=runs/lo
  official: StyleCLIP's defaults (lr 0.1, 300 steps, l2 0.008, OpenAI CLIP ViT-B/32); issue #5's target, not
  measured (no device here): <= 1 s per 1024-px edit amortised over a batch of 32 on one H100:
    python main.py --mode=latent_optimization --config=configs/latent_optimization.py:official --workdir=runs/lo \\
        --config.generator=stylegan2-ffhq-config-f.pt --config.prompts='["a person with purple hair"]' \\
        --config.seeds=0-3 [--config.arcface=model_ir_se50.pth --config.optim.id_lambda=0.005]
Outputs: grid.png (rows: sources; columns: source | one edit per prompt), latents.npy (P, N, num_ws, w_dim)
(W+ space) or styles.npz (S space), images.npz (`source` (N,H,W,3), `edited` (P,N,H,W,3)), metrics.json.
"""
from ml_collections import config_dict

from configs import common


def get_config(arg=None):
    preset = common.preset_name(arg)
    c = config_dict.ConfigDict()
    common.models(c, preset)
    c.prompts = '["a blue shape"]' if preset == "shapes" else '["a person with purple hair"]'  # JSON list
    c.pairing = "product"                    # product: every prompt x every source; zip: source i <-> prompt i
    common.sources(c, preset)
    common.memory(c)
    c.mode = "edit"                          # edit | free_generation
    c.space = "wplus"                        # wplus | s
    c.optim = config_dict.ConfigDict()
    c.optim.lr = 0.03 if preset == "shapes" else 0.1
    c.optim.steps = 300
    c.optim.l2_lambda = 0.003 if preset == "shapes" else 0.008
    c.optim.id_lambda = 0.0                  # > 0 needs --config.arcface
    c.optim.precision = "float32"            # generator convs: float32 | bfloat16 (bf16 inputs, f32 accumulation)
    c.optim.remat = False                    # recompute inside synthesis layers in the backward pass: less memory
    c.report_every = 50
    return c
