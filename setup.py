"""ppcache: training-free caching for diffusion transformers (FLUX, SD3) on PaddlePaddle.

Paddle itself is not a hard requirement, following the PPDiffusers convention: install `paddlepaddle-gpu`
yourself for GPUs, or use the `cpu` extra for the CPU wheel. Two Paddle wheels in one environment break it.
"""
from setuptools import find_packages, setup

setup(
    name="ppcache",
    version="0.1.0",
    description="Training-free block/step caching for FLUX and SD3 diffusion transformers on PaddlePaddle",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ppcache", "ppcache.*"]),
    package_data={"ppcache": ["assets/*/*.json", "assets/*/*/*", "assets/prompts/*", "ops/csrc/*"]},
    include_package_data=True,
    python_requires=">=3.9",
    # Lower bounds only, so that installing ppcache leaves a PaddleMIX user's PPDiffusers (0.29.1 from the PaddleMIX
    # source tree) and PaddleNLP alone; a fresh machine resolves to the tested ppdiffusers 0.29.0 / paddlenlp 2.8.1.
    # Upper bounds only where something is known to break.
    install_requires=[
        "ppdiffusers>=0.29.0",
        "paddlenlp>=2.8.1",
        # ppdiffusers needs a hub without `cached_download` removed (ppcache shims it); <1.0 for paddlenlp.
        "huggingface_hub>=0.23.5,<1.0",
        # paddlenlp 2.8 imports aistudio_sdk.hub.download, which aistudio-sdk 0.3 removed.
        "aistudio-sdk>=0.2.6,<0.3",
        "numpy>=2",
        "pyyaml",
        "Pillow",
        "tqdm",
        "safetensors",
        "sentencepiece",
        "scikit-image",
    ],
    extras_require={
        "cpu": ["paddlepaddle==3.3.1"],
        "search": ["pymoo==0.6.2", "matplotlib"],
        "bench": ["matplotlib"],  # tools/benchmark.py's pareto.png and contact_sheet.png  # ECAD schedule search (tools/search_schedule.py)
        "test": ["pytest", "pytest-xdist", "scikit-learn", "pymoo==0.6.2", "matplotlib"],
        # Reference implementations for parity tests and peer comparisons. torch is pinned to the CPU build
        # that this project is tested with; install torch from the CPU index first elsewhere.
        "parity": ["torch==2.13.0", "diffusers==0.39.0", "transformers==4.57.6", "cache-dit==1.5.3"],
    },
)
