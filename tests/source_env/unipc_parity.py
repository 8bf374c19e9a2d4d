"""Run with PPDiffusers from source first on the import path (test_ppdiffusers_source.py).

    python unipc_parity.py STEPS

The UniPC scheduler as Wan2.1-Diffusers checkpoints ship it (flow prediction, flow sigmas, shift 3), built from the
same config in PPDiffusers (with ppcache's shim) and in diffusers, stepping the same sample with the same model
output (a fixed function of sample and timestep). PPDiffusers spaces its flow sigmas by an older diffusers formula
(about 1e-3 apart), so diffusers is given PPDiffusers' sigmas and timesteps: what is compared is the multistep
predictor-corrector arithmetic, the part the shim touches. Prints one JSON line.
"""
import json
import sys

import numpy as np

import ppcache  # noqa: F401  (its shims, the UniPC one included)

WAN_SCHEDULER = {"beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001, "disable_corrector": [],
                 "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero", "flow_shift": 3.0,
                 "lower_order_final": True, "num_train_timesteps": 1000, "predict_x0": True,
                 "prediction_type": "flow_prediction", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
                 "solver_order": 2, "solver_p": None, "solver_type": "bh2", "steps_offset": 0, "thresholding": False,
                 "timestep_spacing": "linspace", "trained_betas": None, "use_beta_sigmas": False,
                 "use_exponential_sigmas": False, "use_flow_sigmas": True, "use_karras_sigmas": False}


def model_output(x, t):
    return np.tanh(x) * 0.5 - 0.001 * t * x


def run_paddle(steps, x):
    import paddle
    from ppdiffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler.from_config(WAN_SCHEDULER)
    scheduler.set_timesteps(steps)
    sigmas, timesteps = scheduler.sigmas.numpy().astype("float64"), scheduler.timesteps.numpy()
    sample = paddle.to_tensor(x)
    for t in scheduler.timesteps:
        out = paddle.to_tensor(model_output(sample.numpy(), float(t)))
        sample = scheduler.step(out, t, sample, return_dict=False)[0]
    return sigmas, timesteps, sample.numpy()


def run_torch(steps, x, sigmas, timesteps):
    import torch
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler.from_config(WAN_SCHEDULER)
    scheduler.set_timesteps(steps)
    scheduler.sigmas = torch.tensor(sigmas)
    scheduler.timesteps = torch.tensor(timesteps, dtype=torch.int64)
    sample = torch.from_numpy(x)
    for t in scheduler.timesteps:
        out = torch.from_numpy(model_output(sample.numpy(), float(t)))
        sample = scheduler.step(out, t, sample, return_dict=False)[0]
    return sample.numpy()


def fails_without_the_shim(steps, x):
    """Whether the installed scheduler, with its own `paddle` back, fails to step (what the shim is for)."""
    from ppdiffusers.schedulers import scheduling_unipc_multistep as unipc

    shimmed = unipc.paddle
    unipc.paddle = getattr(shimmed, "_paddle", shimmed)
    try:
        run_paddle(steps, x)
        return False
    except ValueError as error:
        return "does not match" in str(error)
    finally:
        unipc.paddle = shimmed


def main():
    from ppdiffusers.schedulers import scheduling_unipc_multistep as unipc

    steps = int(sys.argv[1])
    x = np.random.default_rng(0).standard_normal([1, 4, 3, 8, 8]).astype("float32")
    needed = fails_without_the_shim(steps, x)
    sigmas, timesteps, paddle_x = run_paddle(steps, x)
    torch_x = run_torch(steps, x, sigmas, timesteps)
    print(json.dumps(dict(steps=len(timesteps), finite=bool(np.isfinite(paddle_x).all()), shim_needed=needed,
                          shim_installed=type(unipc.paddle).__name__ == "_PaddleWithMatchedSolve",
                          max_abs_diff=float(np.abs(paddle_x - torch_x).max()), scale=float(np.abs(torch_x).max()),
                          dtype=str(paddle_x.dtype))))


if __name__ == "__main__":
    main()
