"""Training loops for the bundled tiny models: a KL autoencoder, then a rectified-flow transformer on its latents."""
import math
import time

import numpy as np
import paddle
import paddle.nn.functional as F


def _log(message):
    print(message, flush=True)


def cosine_lr(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _mid_attentions(vae):
    return [a for part in (vae.encoder, vae.decoder) for a in part.mid_block.attentions if a is not None]


def disable_mid_attention(vae):
    """Zeroes the output projection of the mid-block attentions, which makes each one exactly its residual
    (identity), and freezes them. Full-resolution attention is most of the autoencoder's cost on CPU and a
    pixel-space autoencoder does not need it. Returns the parameters left to train."""
    frozen = set()
    for attention in _mid_attentions(vae):
        for parameter in attention.to_out[0].parameters():
            parameter.set_value(paddle.zeros_like(parameter))
        for parameter in attention.parameters():
            parameter.stop_gradient = True
            frozen.add(id(parameter))
    return [p for p in vae.parameters() if id(p) not in frozen]


def train_vae(vae, images, iters, batch_size, seed, lr=1e-3, kl_weight=1e-6, mid_attention=True):
    """Reconstruction (L1 + MSE) with a small KL term; returns the final reconstruction MSE.
    `mid_attention=False` trains without the mid-block attentions (see `disable_mid_attention`)."""
    rng = np.random.default_rng(seed)
    parameters = vae.parameters() if mid_attention else disable_mid_attention(vae)
    skipped = [] if mid_attention else [(a, a.forward) for a in _mid_attentions(vae)]
    for attention, _ in skipped:  # exact while the output projection is zero; skipped for speed
        attention.forward = lambda hidden_states, *args, **kwargs: hidden_states
    optimizer = paddle.optimizer.AdamW(learning_rate=lr, parameters=parameters, weight_decay=0.0)
    vae.train()
    start = time.time()
    for step in range(iters):
        optimizer.set_lr(cosine_lr(step, iters, lr, 50))
        x = paddle.to_tensor(images[rng.integers(0, len(images), batch_size)])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        mse = F.mse_loss(recon, x)
        loss = mse + F.l1_loss(recon, x) + kl_weight * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        if step % 100 == 0 or step == iters - 1:
            _log(f"vae step {step}/{iters} mse {float(mse):.5f} ({time.time() - start:.0f}s)")
    for attention, forward in skipped:
        attention.forward = forward
    vae.eval()
    return float(mse)


@paddle.no_grad()
def encode_latents(vae, images, batch_size=256):
    """Posterior means of all images, [N, C, h, w]."""
    chunks = [vae.encode(paddle.to_tensor(images[i: i + batch_size])).latent_dist.mean.numpy()
              for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks)


def pretrain_text_encoders(encoders, groups, iters, seed, lr=2e-3, temperature=0.1):
    """Teaches frozen-later text encoders to tell the subjects apart, as CLIP's contrastive training does for
    real captions: each encoder's sentence feature is scored by cosine similarity against one learned prototype
    per subject (the empty prompt is its own subject), with cross-entropy on the subject.

    `encoders` maps a name to `features(prompt_ids) -> [n, d]` (pooled CLIP, mean T5 tokens) plus its
    parameters; `groups` as in `train_flow`. Returns the final accuracy of each encoder (1.0 when separable).
    """
    paddle.seed(seed)
    ids = [i for group in groups for i in group]
    targets = paddle.to_tensor([k for k, group in enumerate(groups) for _ in group])
    accuracy = {}
    for name, (features, parameters) in encoders.items():
        width = features(ids[:1]).shape[-1]
        prototypes = paddle.create_parameter([len(groups), width], "float32")
        optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=list(parameters) + [prototypes])
        for _ in range(iters):
            logits = F.normalize(features(ids), axis=-1) @ F.normalize(prototypes, axis=-1).T / temperature
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
        accuracy[name] = float((logits.argmax(-1) == targets).astype("float32").mean())
        _log(f"text {name}: {iters} steps, loss {float(loss):.4f}, subject accuracy {accuracy[name]:.3f}")
    return accuracy


class EMA:
    def __init__(self, model, decay):
        self.decay = decay
        self.shadow = {k: v.clone().detach() for k, v in model.state_dict().items() if v.is_floating_point()}

    @paddle.no_grad()
    def update(self, model, decay):
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].set_value(decay * self.shadow[k] + (1 - decay) * v)

    def copy_to(self, model):
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].set_value(v)


def self_guidance_weight(scale, step, iters, ramp=0.3):
    """Weight w of the model's own guidance direction in the target, ramped in over the first `ramp` of training.
    At the fixed point v_c = v_u + (E[n - x0 | c] - v_u) / (1 - w): classifier-free guidance at scale
    1 / (1 - w), so w = 1 - 1 / scale."""
    if scale <= 1.0:
        return 0.0
    return (1.0 - 1.0 / scale) * min(1.0, step / max(1.0, ramp * iters))


class RectifiedFlow:
    """x_s = (1 - s) x0 + s n, target v = n - x0, s ~ logit-normal(0, 1); the model sees s (FLUX, SD3)."""

    def noise(self, x0, noise, rng):
        sigma = (1.0 / (1.0 + np.exp(-rng.standard_normal(x0.shape[0])))).astype(np.float32)
        s = paddle.to_tensor(sigma).reshape([-1] + [1] * (x0.ndim - 1))
        return (1 - s) * x0 + s * noise, paddle.to_tensor(sigma), noise - x0


class Diffusion:
    """DDPM with the linear beta schedule (PixArt-α's): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) n, t uniform over the
    1000 training timesteps; the model sees t. Target n (`epsilon`, PixArt's) or v = sqrt(a_t) n - sqrt(1 - a_t) x0
    (`v_prediction`): v keeps the x0 estimate sqrt(a_t) x_t - sqrt(1 - a_t) v well conditioned at high noise,
    where epsilon's (x_t - sqrt(1 - a_t) n) / sqrt(a_t) multiplies its error by up to 1 / sqrt(a_T) = 160."""

    def __init__(self, prediction_type="v_prediction", beta_start=1e-4, beta_end=0.02, timesteps=1000):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be epsilon or v_prediction, got {prediction_type!r}")
        self.prediction_type = prediction_type
        self.alphas_cumprod = np.cumprod(1.0 - np.linspace(beta_start, beta_end, timesteps))

    def noise(self, x0, noise, rng):
        t = rng.integers(0, len(self.alphas_cumprod), x0.shape[0])
        a = paddle.to_tensor(self.alphas_cumprod[t].astype(np.float32)).reshape([-1] + [1] * (x0.ndim - 1))
        target = noise if self.prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0
        return a.sqrt() * x0 + (1 - a).sqrt() * noise, paddle.to_tensor(t.astype(np.float32)), target


def train_flow(trainable, predict, encode, groups, latents, labels, iters, batch_size, seed, lr=5e-4,
               ema_decay=0.998, drop_prob=0.1, log_every=100, self_guidance=1.0, objective=None):
    """Trains with `objective` (default RectifiedFlow: x_s = (1 - s) x0 + s n, target v = n - x0).

    `self_guidance` > 1 bakes classifier-free guidance at that scale into the conditional model (model-guidance
    training, Tang et al. 2025): prompted samples get the target n - x0 + w (v_c - v_u), with the model's own
    conditional and unconditional predictions, gradients stopped (see `self_guidance_weight`).

    `groups[k]` are the prompt ids of label k (one per prompt template); the last group is the empty prompt,
    used with probability `drop_prob` (for classifier-free guidance). `encode(prompt_ids)` returns the text
    features (embeds, pooled) of those prompts, with gradients when the text encoders train.
    `predict(x_s, s, embeds, pooled)` returns v. `trainable` holds every trained parameter (and gets the EMA).
    """
    objective = objective or RectifiedFlow()
    rng = np.random.default_rng(seed)
    paddle.seed(seed)
    optimizer = paddle.optimizer.AdamW(learning_rate=lr, parameters=trainable.parameters(), weight_decay=0.0,
                                       grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0))
    ema = EMA(trainable, ema_decay)
    empty = groups[-1][0]
    trainable.train()
    start, running = time.time(), []
    for step in range(iters):
        optimizer.set_lr(cosine_lr(step, iters, lr, 100))
        index = rng.integers(0, len(latents), batch_size)
        x0 = paddle.to_tensor(latents[index])
        noise = paddle.to_tensor(rng.standard_normal(x0.shape).astype(np.float32))
        x_s, sigmas, target = objective.noise(x0, noise, rng)
        prompt_ids = [empty if rng.random() < drop_prob else groups[labels[i]][rng.integers(0, len(groups[labels[i]]))]
                      for i in index]
        embeds, pooled = encode(prompt_ids)
        v = predict(x_s, sigmas, embeds, pooled)
        weight = self_guidance_weight(self_guidance, step, iters)
        if weight > 0:
            with paddle.no_grad():
                empty_embeds, empty_pooled = encode([empty] * batch_size)
                unconditional = predict(x_s, sigmas, empty_embeds, empty_pooled)
            prompted = paddle.to_tensor([float(i != empty) for i in prompt_ids]).reshape([-1] + [1] * (x0.ndim - 1))
            target = target + weight * prompted * (v.detach() - unconditional)
        loss = F.mse_loss(v, target)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        ema.update(trainable, min(ema_decay, (1 + step) / (10 + step)))
        running.append(float(loss))
        if step % log_every == 0 or step == iters - 1:
            _log(f"flow step {step}/{iters} loss {np.mean(running[-log_every:]):.4f} ({time.time() - start:.0f}s)")
    trainable.eval()
    ema.copy_to(trainable)
    return float(np.mean(running[-log_every:]))
