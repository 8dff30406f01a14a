"""Config sections of the generative wing: the class-conditional GAN and diffusion model, Stable Diffusion."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from fgvc.config.section import Section


class GanConfig(Section):
    """The class-conditional GAN of ``fgvc gan train`` (epochs and batch size come from ``train``)."""

    image_size: int = Field(32, description="32, 64 or 128")
    channels: int = Field(3, ge=1, le=3, description="image channels the GAN makes (1: grey, 3: RGB)")
    z_dim: int = Field(128, ge=1, description="size of the generator's noise vector")
    width: int = Field(64, ge=8, description="channels of the widest-resolution layers")
    spectral_norm: bool = Field(True, description="spectral normalisation in the discriminator")
    diff_augment: bool = Field(False, description="DiffAugment: colour, translation, cutout on what D sees (small data)")
    lr_g: float = Field(2e-4, gt=0, description="generator learning rate")
    lr_d: float = Field(2e-4, gt=0, description="discriminator learning rate")
    betas: tuple[float, float] = Field((0.0, 0.9), description="Adam betas of both networks")

    @field_validator("image_size")
    @classmethod
    def _power_of_two(cls, size: int) -> int:
        if size not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128 (got {size})")
        return size


class DiffusionConfig(Section):
    """The class-conditional DDPM of ``fgvc diffusion train`` (a diffusers UNet2DModel)."""

    image_size: int = Field(32, ge=8, description="side of the square images the diffusion model makes")
    channels: int = Field(3, ge=1, le=3, description="image channels (1: grey, 3: RGB)")
    block_out_channels: list[int] = Field(default_factory=lambda: [64, 128, 128],
        description="UNet channels per resolution level")
    layers_per_block: int = Field(2, ge=1, description="UNet ResNet layers per level")
    num_train_timesteps: int = Field(1000, ge=10, description="noise steps of the forward process")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = Field("squaredcos_cap_v2",
        description="noise schedule of the forward process")
    label_dropout: float = Field(0.1, ge=0, lt=1, description="classifier-free guidance: drop labels this often")
    lr: float = Field(2e-4, gt=0, description="learning rate")
    grid_steps: int = Field(20, ge=1, description="DDIM steps of the per-epoch progress grid")

    @field_validator("block_out_channels")
    @classmethod
    def _groups(cls, channels: list[int]) -> list[int]:
        if not channels or any(c % 8 for c in channels):
            raise ValueError(f"block_out_channels {channels} must be multiples of 8 (GroupNorm groups)")
        return channels


class StableDiffusionConfig(Section):
    """Pretrained text-to-image / image-to-image generation (``fgvc synthetic text2image|img2img``)."""

    pipeline: Optional[str] = Field(None, description="a diffusers pipeline folder, or a hub id when online")
    template: str = Field("a photo of a {class_name}", description="prompt per class; {class_name} is filled in")
    negative_prompt: Optional[str] = Field(None, description="what the images should not show")
    steps: int = Field(30, ge=1, description="denoising steps per image")
    guidance: float = Field(7.5, ge=0, description="classifier-free guidance scale")
    size: int = Field(512, ge=8, description="side of the generated images in pixels")
    strength: float = Field(0.5, gt=0, le=1, description="img2img: how far variations move from the real image")

    @field_validator("template")
    @classmethod
    def _has_class(cls, template: str) -> str:
        if "{class_name}" not in template:
            raise ValueError("template must contain {class_name}, e.g. 'a photo of a {class_name}, a type of bird'")
        return template
