"""Side-by-side speed against the official PyTorch code, same random weights, alternating A/B rounds.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
    git clone https://github.com/orpatashnik/StyleCLIP /tmp/styleclip
    python benchmarks/vs_official.py --stylegan2_ada_pytorch=/tmp/sg2ada --styleclip=/tmp/styleclip
    python benchmarks/vs_official.py ... --rows=nvlabs,rosinality --size=1024 --rounds=5   # a subset / sizes

Nothing of the official code is copied here: it is imported at run time from the two paths. Both sides get
the same random weights through this package's own converters: an NVlabs ``training.networks.Generator``
(torch default init) is written as a network pickle (``{'G_ema': G}``, the official persistence format) and
read with ``sc.load_generator``; StyleCLIP's rosinality ``models.stylegan2.model.Generator`` is saved as
``{'g_ema': state_dict, 'latent_avg': ...}`` and read the same way. The ``--size`` px configs: NVlabs
channel_base 16384 at 256 px (32768 at 1024), channel_max 512, no fp16 layers; rosinality channel_multiplier 2.

Runtime shims for running the official code on a CPU (applied only in this process):
* ``torch.Tensor.cuda`` / ``torch.nn.Module.cuda`` return their argument (StyleCLIP's scripts and its
  ``fused_leaky_relu`` call ``.cuda()``); NVlabs' custom ops fall back to their reference code on CPU.
* OpenAI's ``clip`` package is not installed here: a stand-in ``clip`` module gives StyleCLIP's own
  ``criteria.clip_loss.CLIPLoss`` a random ViT-B/32 from transformers' torch ``CLIPModel(CLIPConfig())``
  (``clip.load`` -> model whose ``model(image, text)[0]`` are the image logits, ``clip.tokenize`` -> 77
  tokens). Our side uses a random ViT-B/32-shaped native CLIP (other random values; same shapes and FLOPs).
* ``torchvision`` and ``torch.utils.tensorboard`` (imported by StyleCLIP's scripts, unused here) are stubbed
  when missing; StyleCLIP's ``IDLoss`` is not built (``id_lambda=0``: it would load IR-SE50 weights).

Rows (ours = jitted JAX, official = eager PyTorch, float32 on both):
* NVlabs synthesis forward (batch 1, 4; ``noise_mode='const'``) and forward+backward w.r.t. W+ (batch 1);
* rosinality generator (StyleCLIP's copy) likewise (``randomize_noise=False``);
* latent optimisation per step: ``optimization/run_optimization.main`` (the official one-image loop, the
  median of its per-iteration times taken from the loop's progress bar, the first iteration left out) vs
  the loop of ``lo.optimize`` (its compiled chunks driven as ``optimize`` drives them; before/after
  forwards left out like the official setup) at batch 1 and 8; "per edit" divides our step time by the
  batch;
* mapper training step: the body of StyleCLIP's ``Coach.train`` (no-grad G(w), ``w + 0.1 * mapper(w)``,
  G(w_hat), ``Coach.calc_loss`` with CLIP + latent L2, Ranger) on ``StyleCLIPMapper`` vs our
  ``mapper.train_step`` at the same batch (LevelsMapper, Ranger).
* global direction per channel*image (``--rows=gd``): StyleCLIP's ``global_torch`` sweep body
  (``Manipulator.EditOneC`` + ``SingleChannel.GetImgF``, as in ``SingleChannel.py``'s loop, on a generator
  written as an NVlabs pickle and loaded by the official ``Manipulator.LoadModel``) vs our
  ``gd._block_sum`` on the same channels and images; ``cv2``/``imageio`` stubbed when missing, the CLIP
  ``preprocess`` a PIL bicubic resize to 224 + OpenAI's normalisation.

Each round runs A then B (order alternates per round); the table gives the medians and the median of the
per-round ratios ours/official. No asserts on time.
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import styleclip_jax as sc  # noqa: E402
from styleclip_jax.editing import latent_optimization as lo  # noqa: E402
from styleclip_jax.editing import mapper as M  # noqa: E402
from styleclip_jax.models import generator as gen  # noqa: E402
from styleclip_jax.models.mapper import MapperConfig  # noqa: E402
from _common import fmt, print_table  # noqa: E402
from _models import vit_b32_clip  # noqa: E402
from latent_optimization import library_loop, time_steps  # noqa: E402

ROWS = ("nvlabs", "rosinality", "latent_opt", "mapper", "gd")


# ---------------------------------------------------------------------------------------------- shims

def install_shims():
    import torch
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    sys.modules["clip"] = _clip_standin()  # before the torchvision stub: transformers probes torchvision
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tv.utils = types.SimpleNamespace(save_image=lambda *a, **k: None)
        sys.modules["torchvision"] = tv
    try:
        import torch.utils.tensorboard  # noqa: F401
    except Exception:
        tb = types.ModuleType("torch.utils.tensorboard")
        tb.SummaryWriter = object
        sys.modules["torch.utils.tensorboard"] = tb


def _clip_standin():
    """A module with OpenAI clip's `load` and `tokenize`, backed by a random transformers torch CLIPModel."""
    import torch
    from transformers import CLIPConfig, CLIPModel  # noqa: F401  (imported now, before any stub)

    class _Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.m = CLIPModel(CLIPConfig()).eval()  # built on first load: transformers imported lazily
            for p in self.m.parameters():
                p.requires_grad_(False)

        def forward(self, image, text):
            out = self.m(input_ids=text, pixel_values=image)
            return out.logits_per_image, out.logits_per_text

    def load(name, device="cpu", **kw):
        return _Model(), None

    def tokenize(texts, context_length=77, **kw):
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [49406] + [1000 + (ord(c) % 3000) for c in t][: context_length - 2] + [49407]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    mod = types.ModuleType("clip")
    mod.load, mod.tokenize = load, tokenize
    return mod


# ---------------------------------------------------------------------------------------------- timing

def ab_rounds(name, official, ours, rounds, results):
    """Alternate official()/ours() (each returns seconds per unit) for `rounds` rounds; store a row."""
    offs, ourss = [], []
    for r in range(rounds):
        pair = [(official, offs), (ours, ourss)]
        for fn, acc in (pair if r % 2 == 0 else pair[::-1]):
            acc.append(fn())
        print(f"  {name} round {r}: official {offs[-1] * 1e3:.1f} ms, ours {ourss[-1] * 1e3:.1f} ms", flush=True)
    ratio = statistics.median([b / a for a, b in zip(offs, ourss)])
    row = [name, fmt(statistics.median(offs) * 1e3, ".1f"), fmt(statistics.median(ourss) * 1e3, ".1f"),
           fmt(ratio, ".3f"), rounds]
    print("row: " + ", ".join(map(str, row)), flush=True)
    results.append(row)


def med_time(fn, iters):
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def torch_timer(fn, iters):
    import torch

    def run():
        with torch.no_grad():
            return med_time(fn, iters)
    return run


def jax_timer(fn, iters, *args):
    jax.block_until_ready(fn(*args))  # compile
    return lambda: med_time(lambda: jax.block_until_ready(fn(*args)), iters)


# ---------------------------------------------------------------------------------------------- generators

def generator_rows(kind, G_off, G_ours, forward_off, batches, iters, rounds, results):
    import torch
    ws_np = {b: np.random.default_rng(b).standard_normal((b, G_ours.num_ws, G_ours.cfg.w_dim)).astype(np.float32) * 0.5
             for b in batches}
    syn = jax.jit(lambda G, w: gen.synthesis(G.params, G.cfg, w, "const"))
    for b in batches:
        w_t = torch.from_numpy(ws_np[b])
        ab_rounds(f"{kind} synthesis fwd, batch {b}", torch_timer(lambda: forward_off(w_t), iters),
                  jax_timer(syn, iters, G_ours, jnp.asarray(ws_np[b])), rounds, results)
    b = batches[0]
    w_t = torch.from_numpy(ws_np[b])

    def off_fb():
        w = w_t.clone().requires_grad_(True)
        forward_off(w).square().sum().backward()
        return w.grad
    grad = jax.jit(jax.grad(lambda w, G: jnp.sum(jnp.square(gen.synthesis(G.params, G.cfg, w, "const")))))
    ab_rounds(f"{kind} synthesis fwd+bwd (W+), batch {b}", lambda: med_time(off_fb, iters),
              jax_timer(grad, iters, jnp.asarray(ws_np[b]), G_ours), rounds, results)


def nvlabs_generator(path, size, tmp):
    import torch
    sys.path.insert(0, path)
    from training import networks  # noqa: E402  (official, from --stylegan2_ada_pytorch)
    torch.manual_seed(0)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=size, img_channels=3,
                           mapping_kwargs=dict(num_layers=8),
                           synthesis_kwargs=dict(channel_base=16384 if size <= 256 else 32768, channel_max=512,
                                                 num_fp16_res=0, conv_clamp=None)).eval().requires_grad_(False)
    pkl = os.path.join(tmp, "nvlabs.pkl")
    with open(pkl, "wb") as f:
        pickle.dump({"G_ema": G}, f)
    sys.path.remove(path)
    return G, sc.load_generator(pkl)


def rosinality_generator(styleclip, size, tmp):
    import torch
    from models.stylegan2.model import Generator  # official, from --styleclip
    torch.manual_seed(1)
    g = Generator(size, 512, 8, channel_multiplier=2).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        latent_avg = g.mean_latent(4096)[0]
    pt = os.path.join(tmp, "rosinality.pt")
    torch.save({"g_ema": g.state_dict(), "latent_avg": latent_avg}, pt)
    return g, sc.load_generator(pt), pt


# ---------------------------------------------------------------------------------------------- StyleCLIP

def latent_opt_rows(ckpt, G, clip, size, steps, batches, rounds, results, tmp):
    import torch
    from optimization import run_optimization as ro  # official, from --styleclip

    class TimedRange:  # stands in for the loop's tqdm: records the time at each iteration
        def __init__(self, it):
            self.it, self.times = it, []

        def __iter__(self):
            for x in self.it:
                self.times.append(time.perf_counter())
                yield x
            self.times.append(time.perf_counter())

        def set_description(self, *_):
            pass
    bars = []
    ro.tqdm = lambda it: bars.append(TimedRange(it)) or bars[-1]
    ro.IDLoss = lambda opts: None
    args = argparse.Namespace(description="a person with purple hair", ckpt=ckpt, stylegan_size=size, lr_rampup=0.05,
                              lr=0.1, step=steps + 1, mode="edit", l2_lambda=0.008, id_lambda=0.0, latent_path=None,
                              truncation=0.7, save_intermediate_image_every=0, results_dir=os.path.join(tmp, "ro"),
                              ir_se50_weights="", work_in_stylespace=False)

    def official():
        torch.manual_seed(0)
        ro.main(args)
        t = np.diff(bars[-1].times)[1:]  # iteration times, the first (warm-up) left out
        return float(np.median(t))

    ours = {}
    for b in batches:
        w = G.mapping(jax.random.normal(jax.random.PRNGKey(b), (b, G.z_dim)), truncation_psi=0.7)
        t = jax.random.normal(jax.random.PRNGKey(2), (b, clip.embed_dim))
        t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
        run = library_loop(G, clip, w, t, lo.LatentOptConfig(steps=300, lr=0.1))
        jax.block_until_ready(run(steps))  # compiles every chunk length the timed runs use
        ours[b] = (lambda run=run, b=b: time_steps(run, steps) / b)  # per edit (pair) per step
    # one official run per round serves every batch row (it is the slow side)
    offs, mine = [], {b: [] for b in batches}
    for r in range(rounds):
        if r % 2:
            for b in batches:
                mine[b].append(ours[b]())
        offs.append(official())
        if not r % 2:
            for b in batches:
                mine[b].append(ours[b]())
        print(f"  latent opt round {r}: official {offs[-1] * 1e3:.0f} ms/step, ours per edit "
              + ", ".join(f"batch {b} {mine[b][-1] * 1e3:.0f} ms" for b in batches), flush=True)
    for b in batches:
        ratio = statistics.median([m / o for o, m in zip(offs, mine[b])])
        row = [f"latent opt per step per edit, ours batch {b} (official: 1 image)",
               fmt(statistics.median(offs) * 1e3, ".1f"), fmt(statistics.median(mine[b]) * 1e3, ".1f"),
               fmt(ratio, ".3f"), rounds]
        print("row: " + ", ".join(map(str, row)), flush=True)
        results.append(row)


def mapper_rows(styleclip, ckpt, G, clip, size, batch, iters, rounds, results):
    import torch
    from mapper.styleclip_mapper import StyleCLIPMapper  # official, from --styleclip
    from mapper.training.ranger import Ranger
    from criteria.clip_loss import CLIPLoss
    import clip as clip_mod
    try:
        from mapper.training.coach import Coach
        calc_loss = Coach.calc_loss
    except Exception as e:  # pragma: no cover - depends on the checkout
        raise SystemExit(f"vs_official: cannot import StyleCLIP's mapper.training.coach ({e})")
    opts = argparse.Namespace(work_in_stylespace=False, mapper_type="LevelsMapper", no_coarse_mapper=False,
                              no_medium_mapper=False, no_fine_mapper=False, stylegan_size=size, checkpoint_path=None,
                              stylegan_weights=ckpt, id_lambda=0.0, clip_lambda=1.0, latent_l2_lambda=0.8,
                              learning_rate=0.5)
    torch.manual_seed(0)
    net = StyleCLIPMapper(opts)
    net.decoder.requires_grad_(False)
    coach = types.SimpleNamespace(opts=opts, clip_loss=CLIPLoss(opts), latent_l2_loss=torch.nn.MSELoss(),
                                  text_inputs=clip_mod.tokenize("purple hair"))
    optimizer = Ranger(list(net.mapper.parameters()), lr=opts.learning_rate)
    net.train()
    with torch.no_grad():
        w_all = net.decoder([torch.randn(batch, 512)], truncation=0.7, truncation_latent=net.decoder.mean_latent(4096),
                            return_latents=True)[1]

    def official_step():  # the body of StyleCLIP's Coach.train for W+ mappers
        optimizer.zero_grad()
        w = w_all
        with torch.no_grad():
            x, _ = net.decoder([w], input_is_latent=True, randomize_noise=False, truncation=1)
        w_hat = w + 0.1 * net.mapper(w)
        x_hat, w_hat, _ = net.decoder([w_hat], input_is_latent=True, return_latents=True, randomize_noise=False,
                                      truncation=1)
        loss, _ = calc_loss(coach, w, x, w_hat, x_hat)
        loss.backward()
        optimizer.step()

    mcfg = MapperConfig(latent_dim=512)
    tcfg = M.MapperTrainConfig(optimizer="ranger", batch_size=batch)
    state = M.init_train_state(jax.random.PRNGKey(1), jax.random.PRNGKey(2), mcfg, tcfg, 1)
    w = G.mapping(jax.random.normal(jax.random.PRNGKey(3), (batch, G.z_dim)), truncation_psi=0.7)
    text = jax.random.normal(jax.random.PRNGKey(4), (1, clip.embed_dim))
    text = text / jnp.linalg.norm(text, axis=-1, keepdims=True)
    step = lambda: M.train_step(G, clip, None, state, w, text, mcfg=mcfg, tcfg=tcfg)  # noqa: E731
    jax.block_until_ready(step())
    official_step()
    ab_rounds(f"mapper train step, batch {batch}", lambda: med_time(official_step, iters),
              lambda: med_time(lambda: jax.block_until_ready(step()), iters), rounds, results)


def gd_rows(sg2ada, styleclip, size, clip, num_images, channels, rounds, results, tmp):
    """Global-direction channel relevance per channel*image on one middle S layer: the official
    ``global_torch`` path (``Manipulator.EditOneC`` renders every (image, +-alpha) in full, one image per
    call, then ``SingleChannel.GetImgF`` embeds them with CLIP) vs ours (``gd._prefix`` once, then
    ``gd._block_sum`` over a block of channels: suffix renders from the perturbed layer, CLIP, sums)."""
    import copy
    import torch
    from styleclip_jax.editing import global_direction as gd
    for m in [m for m in sys.modules if m.split(".")[0] in ("training", "torch_utils", "dnnlib", "legacy")]:
        del sys.modules[m]  # global_torch ships its own copies of NVlabs' packages
    for name in ("imageio", "cv2"):  # imported by global_torch's visualisation helpers, unused here
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__getattr__ = lambda attr: 0  # module-level constants such as cv2.FONT_HERSHEY_TRIPLEX
            sys.modules[name] = stub
    sys.path.insert(0, os.path.join(styleclip, "global_torch"))
    import manipulate  # official, from --styleclip/global_torch
    import SingleChannel
    torch.manual_seed(0)
    from training import networks  # global_torch's copy: same layout, adds encoded_styles
    Gt = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=size, img_channels=3,
                            mapping_kwargs=dict(num_layers=8),
                            synthesis_kwargs=dict(channel_base=16384 if size <= 256 else 32768, channel_max=512,
                                                  num_fp16_res=0, conv_clamp=None)).eval().requires_grad_(False)
    pkl = os.path.join(tmp, "gd.pkl")
    with open(pkl, "wb") as f:  # the official loader asserts G and D modules too (unused; G_ema is read)
        pickle.dump({"G": Gt, "D": Gt, "G_ema": Gt}, f)
    M_ = manipulate.Manipulator()
    M_.device = torch.device("cpu")
    M_.G = M_.LoadModel(pkl, M_.device)
    M_.SetGParameters()
    M_.GenerateS(num_img=max(num_images, 8))
    M_.GetCodeMS()
    dl = [d[:num_images] for d in M_.dlatents]
    M_.alpha, M_.step, M_.num_images = [-5, 5], 2, num_images
    model, _ = sys.modules["clip"].load("ViT-B/32")
    model.encode_image = lambda x: model.m.get_image_features(pixel_values=x)

    def preprocess(img):  # OpenAI's: resize to 224 (bicubic), to [0, 1], normalise (center crop: square)
        a = np.asarray(img.resize((224, 224), 3), np.float32) / 255.0
        a = (a - [0.48145466, 0.4578275, 0.40821073]) / [0.26862954, 0.26130258, 0.27577711]
        return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))
    SingleChannel.device = "cpu"
    G = sc.load_generator(pkl)
    edit = [l for l in G.layout if not l.is_torgb]
    layer = edit[len(edit) // 2]
    li = layer.index

    def official():
        t0 = time.perf_counter()
        for c in range(channels):
            M_.dlatents = copy.copy(dl)
            M_.dlatents[li][:, c] = M_.code_mean[li][c]
            M_.manipulate_layers = [li]
            _, out = M_.EditOneC(c)
            SingleChannel.GetImgF(out, model, preprocess)
        return (time.perf_counter() - t0) / (channels * num_images)

    ws = gd.sample_ws(G, num_images, seed=0)
    s = {k: jnp.asarray(v) for k, v in G.w_to_s(ws).items()}
    mean = {k: jnp.mean(v, 0) for k, v in s.items()}
    std = {k: jnp.std(v, 0) for k, v in s.items()}
    state = jax.jit(lambda G, s: gd._prefix(G, s, li, "const", "float32"))(G, s)
    rest = {k: v for k, v in s.items() if k in [x.name for x in G.layout[li:]]}
    idx = jnp.arange(channels, dtype=jnp.int32) % layer.channels
    clip_n = vit_b32_clip("normalized")
    fn = jax.jit(lambda G, c, st, r, i, mu, sd: gd._block_sum(G, c, st, r, i, mu, sd, layer_index=li, alpha=5.0,
                                                              noise_mode="const", precision="float32"))
    args = (G, clip_n, state, rest, idx, mean[layer.name], std[layer.name])
    jax.block_until_ready(fn(*args))
    official()  # warm-up

    def ours():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return (time.perf_counter() - t0) / (channels * num_images)
    ab_rounds(f"global direction per channel*image, S layer {li} ({layer.name}), {channels} ch x {num_images} img",
              official, ours, rounds, results)


# ---------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stylegan2_ada_pytorch", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--styleclip", required=True, help="a checkout of orpatashnik/StyleCLIP")
    ap.add_argument("--size", type=int, default=256, help="generator resolution (256 on CPU; 1024 is FFHQ's)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {ROWS}")
    ap.add_argument("--batches", default="1,4", help="generator forward batches (fwd+bwd uses the first)")
    ap.add_argument("--lo-batches", default="1,8")
    ap.add_argument("--lo-steps", type=int, default=4, help="timed Adam steps per latent-optimisation round")
    ap.add_argument("--mapper-batch", type=int, default=2)
    ap.add_argument("--mapper-iters", type=int, default=1, help="mapper steps per round (median)")
    ap.add_argument("--gd-images", type=int, default=2, help="images per global-direction round")
    ap.add_argument("--gd-channels", type=int, default=4, help="channels per global-direction round")
    ap.add_argument("--iters", type=int, default=2, help="calls per round (median)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    for p, flag in ((args.stylegan2_ada_pytorch, "--stylegan2_ada_pytorch"), (args.styleclip, "--styleclip")):
        if not os.path.isdir(p):
            raise SystemExit(f"vs_official: {flag}={p}: not a directory (a checkout of the official repository)")
    rows = args.rows.split(",")
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    install_shims()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__} "
          f"({jax.default_backend()}), {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    batches = [int(x) for x in args.batches.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if "nvlabs" in rows:
            G_off, G_ours = nvlabs_generator(args.stylegan2_ada_pytorch, args.size, tmp)
            generator_rows("NVlabs", G_off, G_ours, lambda w: G_off.synthesis(w, noise_mode="const"),
                           batches, args.iters, args.rounds, results)
            del G_off, G_ours
        sys.path.insert(0, args.styleclip)
        for m in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
            del sys.modules[m]  # NVlabs' `training` package must not shadow anything of StyleCLIP's
        g_off, G, ckpt = rosinality_generator(args.styleclip, args.size, tmp)
        if "rosinality" in rows:
            generator_rows("rosinality", g_off, G,
                           lambda w: g_off([w], input_is_latent=True, randomize_noise=False)[0],
                           batches, args.iters, args.rounds, results)
        clip = vit_b32_clip() if ("latent_opt" in rows or "mapper" in rows) else None
        if "latent_opt" in rows:
            latent_opt_rows(ckpt, G, clip, args.size, args.lo_steps, [int(x) for x in args.lo_batches.split(",")],
                            args.rounds, results, tmp)
        if "mapper" in rows:
            mapper_rows(args.styleclip, ckpt, G, clip, args.size, args.mapper_batch, args.mapper_iters, args.rounds, results)
        if "gd" in rows:
            sys.path.remove(args.styleclip)
            gd_rows(args.stylegan2_ada_pytorch, args.styleclip, args.size, clip, args.gd_images, args.gd_channels,
                    args.rounds, results, tmp)
    print(f"\n{args.size}-px configs, float32; ms per call (latent opt: per step per edit); medians of "
          f"{args.rounds} alternating rounds; ratio = median over rounds of ours/official (< 1: ours faster); "
          f"load average at the end {os.getloadavg()}")
    print_table(results, ["what", "official ms", "ours ms", "ours/official", "rounds"])


if __name__ == "__main__":
    main()
