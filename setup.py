"""styleclip_jax: StyleCLIP (text-driven StyleGAN2 editing) in JAX/Flax."""
from setuptools import find_packages, setup

CONVERT = ["torch>=2.1"]  # CPU build is enough; only the converters and tests import it.
# The interactive editor (--mode=app). gradio 6 requires huggingface_hub>=1, which transformers 4.x (the test
# extra) refuses; gradio 5 installs next to it (README "Interactive editor").
APP = ["gradio>=5.0,<6"]

setup(
    name="styleclip_jax",
    version="0.1.0",
    description="StyleCLIP in JAX/Flax: StyleGAN2 (W, W+, StyleSpace), CLIP-guided editing",
    packages=find_packages(include=["styleclip_jax", "styleclip_jax.*"]),
    package_data={"styleclip_jax": ["assets/*", "assets/**/*"]},
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.8",
        "optax>=0.2.2",
        "orbax-checkpoint>=0.5",
        "safetensors>=0.4",  # native CLIP weights (model.safetensors) through safetensors.numpy
        "numpy>=1.24",
        "pillow>=9",
        "absl-py>=1.0",
        "ml_collections>=0.1.1",
        "tqdm>=4.60",
    ],
    extras_require={
        "convert": CONVERT,
        # optional FlaxCLIPModel backend (load_clip(..., backend="transformers")): transformers 5 removed the
        # Flax model classes; the default native CLIP needs neither transformers nor torch
        "transformers": ["transformers>=4.40,<5"],
        "app": APP,
        "test": CONVERT + ["transformers>=4.40,<5", "pytest>=7", "pytest-xdist>=3"],  # the parity tests compare with FlaxCLIPModel
        "browser-test": APP + ["selenium>=4.10"],  # tests/test_app_browser.py drives the system chromium
    },
)
