"""Config resolvers that depend on the machine a run starts on."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf


def mixed_precision_on_gpu(precision: str) -> str:
    """``${on_gpu:16-mixed}``: mixed precision where a GPU is present, full precision on a CPU.

    Recipes that want mixed precision stay runnable on a laptop without a GPU.
    """
    return precision if torch.cuda.is_available() else "32-true"


def cuda_available() -> bool:
    """``${cuda:}``: true where a CUDA GPU is present, e.g. for the optimizers' single-kernel ``fused`` step."""
    return torch.cuda.is_available()


def register() -> None:
    OmegaConf.register_new_resolver("on_gpu", mixed_precision_on_gpu, replace=True)
    OmegaConf.register_new_resolver("cuda", cuda_available, replace=True)
