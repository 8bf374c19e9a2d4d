"""Flow-matching Euler scheduler with FLUX's resolution-dependent (dynamic) timestep shift.

PyPI ppdiffusers 0.29 ships a flow-match scheduler with a static shift only; FLUX needs
sigma' = e^mu / (e^mu + (1/sigma - 1)) with mu interpolated from the image sequence length.
"""
import json
import math
import os

import numpy as np
import paddle
from ppdiffusers.configuration_utils import ConfigMixin, register_to_config

from ..errors import CheckpointError


def calculate_shift(image_seq_len, base_seq_len=256, max_seq_len=4096, base_shift=0.5, max_shift=1.15):
    """mu grows linearly with the number of image tokens (FLUX.1: 0.5 at 256 tokens, 1.15 at 4096)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + (base_shift - slope * base_seq_len)


class FlowMatchEulerDiscreteScheduler(ConfigMixin):
    config_name = "scheduler_config.json"
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float = 0.5,
        max_shift: float = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
    ):
        self.timesteps = None
        self.sigmas = None
        self.num_inference_steps = None
        self._step_index = None

    @classmethod
    def from_pretrained(cls, directory, subfolder=None, **unused):
        directory = os.path.join(directory, subfolder) if subfolder else directory
        path = os.path.join(directory, cls.config_name)
        try:
            with open(path) as handle:
                config = json.load(handle)
        except FileNotFoundError:
            raise CheckpointError(f"missing {cls.config_name} in {directory}") from None
        except ValueError as error:
            raise CheckpointError(f"corrupt {path}: {error}") from None
        known = {"num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift", "max_shift",
                 "base_image_seq_len", "max_image_seq_len"}
        return cls(**{k: v for k, v in config.items() if k in known})

    def shift_sigmas(self, sigmas, mu=None):
        if self.config.use_dynamic_shifting:
            if mu is None:
                raise ValueError("this scheduler uses dynamic shifting: pass mu (see calculate_shift)")
            return math.exp(mu) / (math.exp(mu) + (1.0 / sigmas - 1.0))
        shift = self.config.shift
        return shift * sigmas / (1 + (shift - 1) * sigmas)

    def default_sigmas(self, num_inference_steps):
        """Unshifted sigmas when the pipeline passes none (SD3), as diffusers' scheduler makes them: T points evenly
        spaced in t between the largest and smallest of the scheduler's training sigmas (those are shifted once
        already unless the shift is dynamic; set_timesteps shifts again, as diffusers does)."""
        train = self.config.num_train_timesteps
        sigma_min = 1.0 / train
        if not self.config.use_dynamic_shifting:
            shift = self.config.shift
            sigma_min = shift * sigma_min / (1 + (shift - 1) * sigma_min)
        return np.linspace(1.0, sigma_min, num_inference_steps)

    def set_timesteps(self, num_inference_steps=None, sigmas=None, mu=None):
        """Shifted sigmas (statically, or dynamically with `mu`) of the given or the default sigmas; the final
        sigma 0 is appended. FLUX pipelines pass sigmas = linspace(1, 1/T, T)."""
        if sigmas is None:
            if not num_inference_steps or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
            sigmas = self.default_sigmas(num_inference_steps)
        sigmas = self.shift_sigmas(np.asarray(sigmas, dtype=np.float64), mu).astype(np.float32)
        self.num_inference_steps = len(sigmas)
        self.timesteps = paddle.to_tensor(sigmas * self.config.num_train_timesteps)
        self.sigmas = paddle.to_tensor(np.append(sigmas, np.float32(0.0)))
        self.timesteps_host = [float(t) for t in sigmas * self.config.num_train_timesteps]
        self._step_index = None

    @property
    def step_index(self):
        return self._step_index

    def set_begin_index(self, begin_index=0):
        self._step_index = begin_index

    def step(self, model_output, timestep, sample, return_dict=False, **unused):
        """x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v, computed in fp32."""
        if self._step_index is None:
            self._step_index = 0
        sigma = self.sigmas[self._step_index]
        sigma_next = self.sigmas[self._step_index + 1]
        prev = sample.astype("float32") + (sigma_next - sigma) * model_output.astype("float32")
        self._step_index += 1
        return (prev.astype(model_output.dtype),)

    def __len__(self):
        return self.config.num_train_timesteps
