"""Pretrained Stable Diffusion through ``diffusers``: prompts per class (text-to-image) and DA-Fusion-style
variations of real training images (image-to-image at a chosen strength) that keep the source label."""

from __future__ import annotations

from pathlib import Path

import torch

from fgvc.config import StableDiffusionConfig
from fgvc.data.images import ImageList
from fgvc.errors import FgvcError
from fgvc.generate.writer import SyntheticImage, write_synthetic


def load_pipeline(cfg: StableDiffusionConfig, image_to_image: bool = False):
    """A diffusers Stable Diffusion pipeline from a local folder (offline) or a hub id (online)."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    if not cfg.pipeline:
        raise FgvcError("set stable_diffusion.pipeline to a diffusers pipeline folder (or a hub id when online)")
    kind = StableDiffusionImg2ImgPipeline if image_to_image else StableDiffusionPipeline
    local = Path(cfg.pipeline).expanduser().is_dir()
    try:
        pipe = kind.from_pretrained(str(Path(cfg.pipeline).expanduser()) if local else cfg.pipeline,
                                    safety_checker=None, requires_safety_checker=False, local_files_only=local)
    except Exception as exc:  # noqa: BLE001 - hub and format errors come in many types
        raise FgvcError(f"cannot load the Stable Diffusion pipeline {cfg.pipeline!r}: {exc}. Offline, point "
                        "stable_diffusion.pipeline at a folder saved with save_pretrained().") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda" if torch.cuda.is_available() else "cpu")


def prompt(cfg: StableDiffusionConfig, class_name: str) -> str:
    return cfg.template.format(class_name=class_name.replace("_", " "))


def text_to_image(cfg: StableDiffusionConfig, class_names: list[str], per_class: int, out: Path, seed: int = 0,
                  batch_size: int = 4, pipe=None) -> Path:
    """``per_class`` images per class from the class prompt; labels are the prompted classes."""
    pipe = pipe or load_pipeline(cfg)
    items = []
    for index, name in enumerate(class_names):
        for start in range(0, per_class, batch_size):
            count = min(batch_size, per_class - start)
            image_seed = seed * 100_003 + index * 1_009 + start
            result = pipe([prompt(cfg, name)] * count, negative_prompt=[cfg.negative_prompt] * count if cfg.negative_prompt else None,
                          num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, height=cfg.size, width=cfg.size,
                          generator=torch.Generator().manual_seed(image_seed), output_type="pil")
            items += [SyntheticImage(img, name, "text2image", cfg.pipeline or "", seed=image_seed + k, guidance=cfg.guidance)
                      for k, img in enumerate(result.images)]
    return write_synthetic(items, out)


def image_variations(cfg: StableDiffusionConfig, images: ImageList, per_image: int, out: Path, seed: int = 0,
                     pipe=None) -> Path:
    """DA-Fusion-style augmentation: ``per_image`` variations of each real image (strength
    ``cfg.strength``, prompted with its class); every variation keeps its source image's label."""
    pipe = pipe or load_pipeline(cfg, image_to_image=True)
    items = []
    for index in range(len(images)):
        label = images.class_names[int(images.labels[index])]
        source = images.load(index).resize((cfg.size, cfg.size))
        for k in range(per_image):
            image_seed = seed * 100_003 + index * 101 + k
            result = pipe(prompt(cfg, label), image=source, strength=cfg.strength, num_inference_steps=cfg.steps,
                          guidance_scale=cfg.guidance, generator=torch.Generator().manual_seed(image_seed),
                          negative_prompt=cfg.negative_prompt, output_type="pil")
            items.append(SyntheticImage(result.images[0], label, "img2img", cfg.pipeline or "", seed=image_seed,
                                        guidance=cfg.guidance, extra={"source": images.key(index)}))
    return write_synthetic(items, out)
