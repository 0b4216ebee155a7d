"""Config sections shared by several modes (the models to load, the images to edit, the fs3 precomputation).

Each function returns a ConfigDict section or sets fields on one; mode configs (`configs/<mode>.py`) call
them so that a field means the same thing, with the same default, in every mode.
"""
from ml_collections import config_dict

PRESETS = ("shapes", "official")


def preset_name(arg) -> str:
    """`--config=configs/MODE.py:PRESET`: '' or None -> 'shapes' (offline default); else one of PRESETS."""
    name = (arg or "shapes").strip()
    if name not in PRESETS:
        raise ValueError(f"--config=...:{name}: unknown preset; expected one of {', '.join(PRESETS)}")
    return name


def models(c, preset: str, clip: bool = True, clip_preprocess: str = "official") -> None:
    """Fields naming the networks: generator (+ CLIP, + optional ArcFace)."""
    shapes = preset == "shapes"
    # NVlabs .pkl, rosinality .pt, a folder from checkpoints_convert/convert_stylegan2.py, or "shapes"
    c.generator = "shapes" if shapes else config_dict.placeholder(str)
    if clip:
        c.clip_model = "shapes" if shapes else "openai/clip-vit-base-patch32"  # hub name, HF folder, or "shapes"
        # official: StyleCLIP's resampling of [-1, 1] images (right for the shapes CLIP); normalized: plus CLIP's
        # mean/std (right for OpenAI's CLIP, as StyleCLIP's global-direction code does); resize: plain bicubic
        c.clip_preprocess = clip_preprocess
    c.arcface = config_dict.placeholder(str)  # model_ir_se50.pth or a converted folder (identity loss/metric)


def global_edit(c, preset: str) -> None:
    """One global-direction edit: neutral -> target text at strength alpha, disentanglement threshold beta."""
    shapes = preset == "shapes"
    c.neutral = "a shape" if shapes else "a face"
    c.target = "a red shape" if shapes else "a face with blue eyes"
    c.alpha = 3.0 if shapes else 4.1           # FFHQ edits typically use 2-5
    c.beta = 0.1 if shapes else 0.15


def sources(c, preset: str = "shapes") -> None:
    """The images to edit: seeds of the generator, a W+ latents file, or image files (inverted first)."""
    c.seeds = "0-7"                            # '0-7', '1,5,9'
    c.latents = config_dict.placeholder(str)   # W+ file (.npy/.npz/.pt, (N, num_ws, w_dim)); overrides seeds
    c.truncation_psi = 0.7
    # photos: a glob ('photos/*.png'), folder or file; inverted with `encoder` (e4e/pSp .pt, converted folder,
    # "shapes"; unset: the shipped shapes encoder when there is one, else the mean W) and refine_steps of
    # optimisation (as --mode=invert); face photos must be FFHQ-aligned crops (--mode=invert can align them)
    c.images = config_dict.placeholder(str)
    c.encoder = config_dict.placeholder(str)
    c.refine_steps = 200 if preset == "shapes" else 0


def precompute(c) -> None:
    """StyleSpace statistics and the channel-relevance sweep (fs3) of global directions, cached per checkpoint."""
    c.fs3 = config_dict.placeholder(str)       # an fs3 .npy to use instead of the cached sweep
    c.cache_dir = config_dict.placeholder(str)  # default: next to the checkpoint (or ~/.cache/styleclip_jax)
    c.stats = config_dict.ConfigDict()
    c.stats.samples = 100_000                  # StyleCLIP's S_mean_std: 100k samples
    c.stats.seed = 5
    c.stats.truncation_psi = 0.7
    c.stats.truncation_cutoff = 8
    c.sweep = config_dict.ConfigDict()
    c.sweep.images = 100                       # images per channel (StyleCLIP: 100)
    c.sweep.alpha = 5.0                        # the +-alpha * std step of each channel
    c.sweep.max_resolution = config_dict.placeholder(int)  # official torch script: 128 (skips finer layers)
    c.sweep.block_size = 16                    # channels per compiled call
    c.sweep.image_batch = config_dict.placeholder(int)     # images per call (default: all sweep.images)
    c.sweep.precision = "float32"              # float32 | bfloat16 (generator convs)
    memory(c)


def memory(c) -> None:
    """The memory a mode's main program may use per device; its batch (sweep images/channels per call, latent-
    optimisation pairs per program) is the largest whose compiled program fits (styleclip_jax.memory)."""
    c.memory_fraction = 0.9                    # share of the accelerator's free memory
    c.memory_budget_mb = config_dict.placeholder(float)  # explicit MiB per device (CPU: no probing without it)
