"""``diffusion``: a conditional denoising diffusion decoder, after Stable Diffusion, in pixel space.

    training:  x0 ─▶ pixel-unshuffle (B, C·p², H/p, W/p) ─▶ x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε    (cosine schedule)
               cond (B, D) ─▶ linear ─▶ (B, tokens, cross_dim) ─▶ U-Net cross-attention
               loss: ‖v − v_θ(x_t, t, cond)‖², v = √ᾱ_t ε − √(1−ᾱ_t) x0   (the condition replaced by zeros on 10% of items)
    sampling:  DDIM, ``steps`` steps from t = T; classifier-free guidance v = v_∅ + g · (v_c − v_∅); x̂0 clipped to [-1, 1]

The U-Net (``UNet2DConditionModel``) and the schedulers (``DDPMScheduler`` for the
noise, ``DDIMScheduler`` for sampling) are diffusers'. Stable Diffusion denoises a VAE's
latents (8× smaller per side, 4 channels); at 32 px a lossless pixel-unshuffle by
``patch`` plays that part here: the U-Net sees a ``size/patch`` grid, which is what
makes training affordable on a CPU. docs/translation.md says what a VAE would change.

The U-Net predicts the velocity ``v`` (Salimans & Ho 2022; Stable Diffusion 2) rather than
the noise: with the cosine schedule, ᾱ_T ≈ 2e-9, and a noise prediction at the first
sampling steps turns into x̂0 estimates hundreds of times too large (measured: x̂0 MSE
164 at t = 990 against 0.0002 at t = 10), which clipping alone did not rescue.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avkit.errors import ConfigError
from avkit.models.decoders.base import IMAGE_DECODERS, ImageDecoder


class ConditionalUNet(nn.Module):
    """diffusers' U-Net with the condition vector turned into its cross-attention tokens."""

    def __init__(self, unet: nn.Module, cond_dim: int, tokens: int, cross_dim: int) -> None:
        super().__init__()
        self.tokens, self.cross_dim = tokens, cross_dim
        self.to_tokens = nn.Linear(cond_dim, tokens * cross_dim)
        self.unet = unet

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """``x (B, C, h, w)``, ``t (B,)``, ``cond (B, D)`` (zeros: unconditional) -> ``(B, C, h, w)``."""
        context = self.to_tokens(cond).view(len(cond), self.tokens, self.cross_dim)
        return self.unet(x, t, encoder_hidden_states=context).sample


@IMAGE_DECODERS.register("diffusion")
class DiffusionDecoder(ImageDecoder):
    """Loss term ``mse`` (of the U-Net's prediction: velocity, or noise). Sampling options: ``steps``, ``guidance``, ``eta``.

    Args:
        cond_dim: the condition's size. size: the image side. channels: image channels.
        patch: pixel-unshuffle factor before the U-Net (1: none).
        widths: the U-Net's channels per level; every level but the first has cross-attention.
        cross_dim: the condition tokens' size; tokens: how many tokens the condition becomes.
        head_dim: attention head size. train_timesteps: the noise schedule's length (cosine schedule).
        condition_dropout: the fraction of training items denoised without their condition
            (classifier-free guidance needs the unconditional model too).
        prediction: what the U-Net predicts, ``v_prediction`` or ``epsilon``.
        ema: the decay of an exponential moving average of the U-Net's weights, which samples
            and validation use (0: off; warmed up as ``min(ema, (1 + n) / (10 + n))`` after n steps).
        steps, guidance, eta: DDIM sampling defaults (overridable per call).
    """

    loss_terms = ("mse",)

    def __init__(self, cond_dim: int, size: int, channels: int = 3, patch: int = 2,
                 widths: tuple[int, ...] = (32, 64, 64), cross_dim: int = 64, tokens: int = 4, head_dim: int = 8,
                 train_timesteps: int = 1000, condition_dropout: float = 0.1, prediction: str = "v_prediction", ema: float = 0.999,
                 steps: int = 50, guidance: float = 3.0, eta: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        # imported here, not at the top: 2.5 s that only this decoder needs
        from diffusers import DDPMScheduler, UNet2DConditionModel

        if patch < 1 or size % patch or (size // patch) % 2 ** (len(widths) - 1):
            raise ConfigError(f"diffusion decoder: size {size} must divide by patch {patch}, and size/patch by "
                              f"2^{len(widths) - 1} for {len(widths)} U-Net levels")  # fmt: skip
        if prediction not in ("v_prediction", "epsilon"):
            raise ConfigError(f"diffusion decoder: prediction is 'v_prediction' or 'epsilon', not {prediction!r}")
        if not 0 <= condition_dropout < 1 or not 0 <= ema < 1 or steps < 1 or tokens < 1:
            raise ConfigError(f"diffusion decoder: condition_dropout and ema in [0, 1), steps and tokens >= 1; "
                              f"got {condition_dropout}, {ema}, {steps}, {tokens}")  # fmt: skip
        self.size, self.channels, self.patch = size, channels, patch
        self.condition_dropout = condition_dropout
        self.sampling = {"steps": steps, "guidance": guidance, "eta": eta}
        levels = len(widths)
        unet = UNet2DConditionModel(
            sample_size=size // patch, in_channels=channels * patch**2, out_channels=channels * patch**2,
            block_out_channels=tuple(widths), layers_per_block=1, cross_attention_dim=cross_dim,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
            attention_head_dim=head_dim, norm_num_groups=min(8, min(widths)),
        )  # fmt: skip
        self.denoiser = ConditionalUNet(unet, cond_dim, tokens, cross_dim)
        self.ema = ema
        if ema > 0:  # trained by averaging, not by gradients: saved with the weights, so resume stays exact
            self.ema_denoiser = copy.deepcopy(self.denoiser).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.noise = DDPMScheduler(num_train_timesteps=train_timesteps, beta_schedule="squaredcos_cap_v2",
                                   prediction_type=prediction, clip_sample=True, clip_sample_range=1.0)  # fmt: skip

    def _denoise(self, x: Tensor, t: Tensor, cond: Tensor, averaged: bool = False) -> Tensor:
        """The prediction (v or ε) for ``x (B, C·p², h, w)`` at timesteps ``t (B,)``; ``averaged``: by the EMA weights."""
        return (self.ema_denoiser if averaged and self.ema > 0 else self.denoiser)(x, t, cond)

    @torch.no_grad()
    def _update_average(self) -> None:
        """One step of the weights' moving average."""
        n = int(self.ema_updates)
        decay = min(self.ema, (1 + n) / (10 + n))
        for averaged, current in zip(self.ema_denoiser.parameters(), self.denoiser.parameters(), strict=True):
            averaged.lerp_(current, 1 - decay)
        self.ema_updates += 1

    def _noised(self, images: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_t, t, target)`` for a batch of images: a random timestep and noise per item; the target is
        what the U-Net predicts (v or ε)."""
        x0 = F.pixel_unshuffle(images, self.patch)
        gen = dict(generator=generator, device=generator.device) if generator is not None else {"device": x0.device}
        t = torch.randint(0, self.noise.config.num_train_timesteps, (len(x0),), **gen).to(x0.device)
        eps = torch.randn(x0.shape, **gen).to(x0.device)
        target = self.noise.get_velocity(x0, eps, t) if self.noise.config.prediction_type == "v_prediction" else eps
        return self.noise.add_noise(x0, eps, t), t, target

    def losses(self, cond: Tensor, images: Tensor, features: Callable[[Tensor], Tensor], embedding: Tensor) -> dict[str, Tensor]:
        if self.ema > 0 and self.training:  # before this step's update: the average trails the weights by one step
            self._update_average()
        x_t, t, target = self._noised(images, None)
        if self.condition_dropout > 0:
            keep = torch.rand(len(cond), device=cond.device) >= self.condition_dropout
            cond = cond * keep[:, None].to(cond.dtype)
        return {"mse": F.mse_loss(self._denoise(x_t, t, cond), target)}

    def validation_error(self, cond: Tensor, images: Tensor) -> Tensor:
        generator = torch.Generator().manual_seed(0)  # the same timesteps and noise at every evaluation
        x_t, t, target = (v.to(images.device) for v in self._noised(images.cpu(), generator))
        return (self._denoise(x_t, t, cond, averaged=True) - target).pow(2).flatten(1).mean(1)

    @torch.no_grad()
    def generate(self, cond: Tensor, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """DDIM sampling. ``steps``: denoising steps; ``guidance``: the classifier-free guidance scale
        (1: conditional only, 0: unconditional); ``eta``: 0 is deterministic DDIM, 1 is DDPM-like."""
        from diffusers import DDIMScheduler

        unknown = sorted(set(options) - set(self.sampling))
        if unknown:
            raise ConfigError(f"the diffusion decoder's sampling options are {sorted(self.sampling)}; got {unknown}")
        opts = {**self.sampling, **options}
        if int(opts["steps"]) < 1:
            raise ConfigError(f"steps must be at least 1, got {opts['steps']}")
        scheduler = DDIMScheduler.from_config(self.noise.config, timestep_spacing="trailing")  # the first step at t = T
        scheduler.set_timesteps(int(opts["steps"]))
        b, side = len(cond), self.size // self.patch
        x = torch.randn((b, self.channels * self.patch**2, side, side), generator=generator).to(cond.device)
        guided = opts["guidance"] != 1.0
        both = torch.cat([cond, torch.zeros_like(cond)]) if guided else cond
        for t in scheduler.timesteps:
            out = self._denoise(torch.cat([x, x]) if guided else x, t.expand(len(both)).to(cond.device), both, averaged=True)
            if guided:
                conditional, unconditional = out.chunk(2)
                out = unconditional + opts["guidance"] * (conditional - unconditional)
            x = scheduler.step(out, t, x, eta=float(opts["eta"]), generator=generator).prev_sample
        return F.pixel_shuffle(x, self.patch)
