"""The HarmoVid video diffusion harmonizer: a CogVideoX transformer conditioned on composite, background and mask.

Conditioning layout (latent space, per latent frame, channel order as the transformer's input):

    [ noisy latent (C) | composite latent (C) | background latent (C) | mask (1) ]     C = VAE latent channels

The composite and background videos are encoded by the CogVideoX VAE; the mask is resized to the latent grid
(area average over each latent cell and over the VAE's temporal compression: a soft coverage in [0, 1]). The
transformer's patch embedding is widened from C to 3C + 1 input channels; the new weights are zero, so a pretrained
text-to-video CogVideoX checkpoint starts out computing exactly what it computed before (tested). There is no text:
the prompt embedding is a fixed tensor stored with the model (zeros unless trained).

Configurations: ``tiny`` builds from config alone (random weights; tests and CPU runs), ``2b``/``5b`` widen a
pretrained CogVideoX folder (diffusers layout: transformer/, vae/, scheduler/) that the user has.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ModelError

FORMAT = "harmovid-diffusion"
VERSION = 1


@dataclass
class DiffusionConfig:
    name: str = "tiny"
    latent_channels: int = 4
    mask_channels: int = 1
    frames: int = 9  # pixel frames per window (1 + 4k for CogVideoX's VAE)
    height: int = 64  # pixel size the model works at
    width: int = 64
    text_len: int = 8
    text_dim: int = 16
    prediction: str = "v_prediction"

    @property
    def latent_frames(self) -> int:
        return (self.frames - 1) // 4 + 1


TINY_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=8, time_embed_dim=16, num_layers=2,
                        patch_size=2, temporal_compression_ratio=4, use_rotary_positional_embeddings=False,
                        use_learned_positional_embeddings=False)
TINY_VAE = dict(down_block_types=("CogVideoXDownBlock3D",) * 3, up_block_types=("CogVideoXUpBlock3D",) * 3,
                block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, temporal_compression_ratio=4)
# what fits where (bf16, batch 1, gradient checkpointing), for the VRAM estimate shown before a run
PRESETS = {
    "tiny": DiffusionConfig(),
    "2b": DiffusionConfig("2b", 16, 1, 49, 480, 720, 226, 4096),
    "5b": DiffusionConfig("5b", 16, 1, 49, 480, 720, 226, 4096),
}


def _diffusers():
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ModelError("the diffusion harmonizer needs torch and diffusers (pip install diffusers)") from e
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel, AutoencoderKLCogVideoX, CogVideoXDDIMScheduler


def widen_input(transformer, extra: int):
    """Add ``extra`` input channels to a CogVideoX transformer's patch embedding, zero-initialised (in place)."""
    import torch

    proj = transformer.patch_embed.proj
    if isinstance(proj, torch.nn.Conv2d):
        new = torch.nn.Conv2d(proj.in_channels + extra, proj.out_channels, proj.kernel_size, proj.stride,
                              bias=proj.bias is not None)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, : proj.in_channels] = proj.weight
            if proj.bias is not None:
                new.bias.copy_(proj.bias)
    else:  # CogVideoX 1.5 embeds temporal patches with a Linear layer
        raise ModelError("widening CogVideoX 1.5 (temporal patches) is not supported yet; use a CogVideoX 1.0 "
                         "checkpoint (2b or 5b)")
    new = new.to(proj.weight.device, proj.weight.dtype)
    transformer.patch_embed.proj = new
    transformer.register_to_config(in_channels=transformer.config.in_channels + extra)
    return transformer


class HarmoVidModel:
    """Transformer + VAE + scheduler + the fixed prompt embedding, with the conditioning rule above."""

    def __init__(self, transformer, vae, scheduler, cfg: DiffusionConfig, prompt_embeds=None):
        import torch

        self.transformer, self.vae, self.scheduler, self.cfg = transformer, vae, scheduler, cfg
        if prompt_embeds is None:
            prompt_embeds = torch.zeros(1, cfg.text_len, cfg.text_dim)
        self.prompt_embeds = prompt_embeds

    # -- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def tiny(cls, seed: int = 0, cfg: DiffusionConfig | None = None) -> "HarmoVidModel":
        import torch

        Transformer, VAE, Scheduler = _diffusers()
        cfg = cfg or DiffusionConfig()
        torch.manual_seed(seed)
        c = cfg.latent_channels
        vae = VAE(latent_channels=c, sample_height=cfg.height, sample_width=cfg.width, **TINY_VAE)
        tr = Transformer(in_channels=c, out_channels=c, text_embed_dim=cfg.text_dim, max_text_seq_length=cfg.text_len,
                         sample_width=cfg.width // 4, sample_height=cfg.height // 4, sample_frames=cfg.frames,
                         **TINY_TRANSFORMER)
        widen_input(tr, 2 * c + cfg.mask_channels)
        sched = Scheduler(prediction_type=cfg.prediction, timestep_spacing="trailing", rescale_betas_zero_snr=True)
        return cls(tr, vae.eval(), sched, cfg)

    @classmethod
    def from_cogvideox(cls, folder, name: str = "2b", dtype=None) -> "HarmoVidModel":
        """Widen a pretrained CogVideoX (diffusers folder with transformer/, vae/, scheduler/) for harmonization."""
        Transformer, VAE, Scheduler = _diffusers()
        folder = Path(folder)
        for sub in ("transformer", "vae", "scheduler"):
            if not (folder / sub).is_dir():
                raise ModelError(f"'{folder}' is not a CogVideoX folder (no {sub}/); download e.g. THUDM/CogVideoX-2b "
                                 "with its diffusers layout and point --pretrained at it")
        kw = {"torch_dtype": dtype} if dtype is not None else {}
        kw["low_cpu_mem_usage"] = False
        tr = Transformer.from_pretrained(folder, subfolder="transformer", **kw)
        if tr.config.in_channels != tr.config.out_channels:
            raise ModelError("that CogVideoX is an image-to-video model; start from the text-to-video one")
        vae = VAE.from_pretrained(folder, subfolder="vae", **kw)
        sched = Scheduler.from_pretrained(folder, subfolder="scheduler")
        c = tr.config.out_channels
        cfg = DiffusionConfig(name, c, 1, 49, 480, 720, tr.config.max_text_seq_length, tr.config.text_embed_dim,
                              sched.config.prediction_type)
        widen_input(tr, 2 * c + 1)
        return cls(tr, vae.eval(), sched, cfg)

    # -- files -----------------------------------------------------------------------------------------------------
    def save(self, folder) -> None:
        """diffusers layout (transformer/, vae/, scheduler/) plus harmovid.json and the prompt embedding."""
        import torch

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".part")
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.transformer.save_pretrained(tmp / "transformer")
        self.vae.save_pretrained(tmp / "vae")
        self.scheduler.save_pretrained(tmp / "scheduler")
        torch.save(self.prompt_embeds.cpu(), tmp / "prompt_embeds.pt")
        (tmp / "harmovid.json").write_text(json.dumps({"format": FORMAT, "version": VERSION,
                                                       "config": asdict(self.cfg)}, indent=1))
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.replace(folder)

    @classmethod
    def load(cls, folder, device: str = "cpu", dtype=None) -> "HarmoVidModel":
        import torch

        Transformer, VAE, Scheduler = _diffusers()
        folder = Path(folder)
        meta = folder / "harmovid.json"
        if not meta.is_file():
            raise ModelError(f"'{folder}' is not a HarmoVid diffusion checkpoint (no harmovid.json); train one with "
                             "'harmovid train diffusion'")
        try:
            info = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise ModelError(f"'{meta}' is corrupt") from e
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise ModelError(f"'{folder}' is a {info.get('format')} v{info.get('version')} checkpoint; this HarmoVid "
                             f"reads {FORMAT} v{VERSION}")
        cfg = DiffusionConfig(**info["config"])
        kw = {"torch_dtype": dtype} if dtype is not None else {}
        kw["low_cpu_mem_usage"] = False
        try:
            tr = Transformer.from_pretrained(folder / "transformer", **kw)
            vae = VAE.from_pretrained(folder / "vae", **kw)
            sched = Scheduler.from_pretrained(folder / "scheduler")
            prompt = torch.load(folder / "prompt_embeds.pt", weights_only=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"'{folder}' is incomplete or damaged: {str(e).splitlines()[0]}") from e
        m = cls(tr.to(device), vae.to(device).eval(), sched, cfg, prompt.to(device))
        return m

    # -- conditioning ----------------------------------------------------------------------------------------------
    @property
    def device(self):
        return next(self.transformer.parameters()).device

    @property
    def dtype(self):
        return next(self.transformer.parameters()).dtype

    def encode(self, video):
        """(B, F, 3, H, W) in [-1, 1] -> scaled latents (B, f, C, h, w)."""
        import torch

        with torch.no_grad():
            x = video.permute(0, 2, 1, 3, 4).to(self.vae.device, self.vae.dtype)
            z = self.vae.encode(x).latent_dist.mode()
        return (z * self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).to(self.dtype)

    def decode(self, latents):
        """Scaled latents (B, f, C, h, w) -> (B, F, 3, H, W) in [-1, 1]."""
        import torch

        with torch.no_grad():
            z = (latents / self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).to(self.vae.dtype)
            x = self.vae.decode(z).sample
        return x.permute(0, 2, 1, 3, 4).clamp(-1, 1)

    def mask_latent(self, mask, latent_shape):
        """(B, F, 1, H, W) coverage -> (B, f, 1, h, w): area average per latent cell and per temporal group."""
        import torch
        import torch.nn.functional as F

        b, f, _, h, w = latent_shape
        m = mask.permute(0, 2, 1, 3, 4).float()  # B, 1, F, H, W
        # CogVideoX's VAE keeps frame 0 alone and packs the following frames by 4
        first = m[:, :, :1]
        rest = m[:, :, 1:]
        parts = [F.adaptive_avg_pool3d(first, (1, h, w))]
        if f > 1:
            parts.append(F.adaptive_avg_pool3d(rest, (f - 1, h, w)))
        return torch.cat(parts, 2).permute(0, 2, 1, 3, 4).to(self.dtype)

    def conditioning(self, composite, background, mask):
        """Latent conditioning (B, f, 2C + 1, h, w) for videos in [-1, 1] and a coverage mask."""
        import torch

        zc = self.encode(composite)
        zb = self.encode(background)
        zm = self.mask_latent(mask, zc.shape)
        return torch.cat([zc, zb, zm], 2)

    def predict(self, noisy, cond, timestep):
        """The transformer's output (v or epsilon, per the scheduler) for noisy latents (B, f, C, h, w)."""
        import torch

        b = noisy.shape[0]
        x = torch.cat([noisy, cond], 2)
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=noisy.device)
        t = t.expand(b) if t.numel() == 1 else t
        prompt = self.prompt_embeds.to(noisy.device, noisy.dtype).expand(b, -1, -1)
        return self.transformer(hidden_states=x, encoder_hidden_states=prompt, timestep=t, return_dict=False)[0]


def vram_estimate_gb(cfg: DiffusionConfig, params: int, train: bool, dtype_bytes: int = 2) -> float:
    """Rough GPU memory for one window: weights (+ grads and Adam state when training) + activations."""
    tokens = cfg.latent_frames * (cfg.height // 16) * (cfg.width // 16) + cfg.text_len
    weights = params * dtype_bytes
    opt = params * (4 + 4 + 4) if train else 0  # fp32 master grads + two Adam moments
    act = tokens * 3072 * 30 * dtype_bytes * (4 if train else 1)
    return (weights + opt + act) / 2**30 + 1.0


def checkpoint_summary(folder) -> str:
    """One line for the user before a run: configuration, size and a VRAM estimate for inference."""
    folder = Path(folder)
    try:
        cfg = DiffusionConfig(**json.loads((folder / "harmovid.json").read_text())["config"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ModelError(f"'{folder}' is not a HarmoVid diffusion checkpoint (no readable harmovid.json)") from e
    weights = sum(p.stat().st_size for p in (folder / "transformer").glob("*.safetensors"))
    params = weights // 4  # saved in fp32
    return (f"diffusion model '{cfg.name}': {params / 1e6:.2f} M transformer parameters, {cfg.width}x{cfg.height}, "
            f"{cfg.frames} frames per window; inference needs about {vram_estimate_gb(cfg, params, False):.1f} GB "
            "of GPU memory in bf16 (or runs on the CPU)")
