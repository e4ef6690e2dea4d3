"""The few torchvision transforms the vision handlers need, on Pillow + numpy + torch (no torchvision).

They follow torchvision's semantics for PIL images, so a model trained with
``Resize(256) -> CenterCrop(224) -> ToTensor() -> Normalize(mean, std)`` sees the same tensors:
Resize with an int scales the shorter side (bilinear, Pillow's antialiasing filter), CenterCrop
rounds the offset and pads with zeros when the crop is larger than the image, ToTensor scales 8-bit
images to [0, 1] as C x H x W floats. Tensors (C x H x W) are accepted too. The objects are callable,
so handlers that assign ``image_processing = Compose([...])`` keep working without torchvision.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

PILLOW_MISSING = "The vision handlers need Pillow: pip install Pillow"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil_image() -> ModuleType:
    """``PIL.Image``, imported on first use, with an actionable message when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(PILLOW_MISSING) from exc
    return Image


def is_pil_image(value: Any) -> bool:
    """True for a PIL image, without importing Pillow just to find out."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(value, module.Image)


def open_image(data: bytes | bytearray) -> Any:
    """Decode image bytes (any format Pillow reads); undecodable data raises ``PIL.UnidentifiedImageError``."""
    return pil_image().open(io.BytesIO(bytes(data)))


def unlimit_image_pixels() -> None:
    """``limit_max_image_pixels=false``: switch off Pillow's decompression-bomb guard, as TorchServe does."""
    pil_image().MAX_IMAGE_PIXELS = None


def resized_size(height: int, width: int, size: int | Sequence[int]) -> tuple[int, int]:
    """torchvision's output size: an int sets the shorter side (the longer one truncated), a pair is ``(h, w)``."""
    if not isinstance(size, int):
        h, w = size if len(size) == 2 else (size[0], size[0])
        return int(h), int(w)
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


class Compose:
    """Apply transforms in order (``torchvision.transforms.Compose``)."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        for transform in self.transforms:
            image = transform(image)
        return image


class ConvertRGB:
    """Any PIL mode (grey, palette, RGBA, CMYK) to RGB, so ImageNet normalisation always sees three channels."""

    def __call__(self, image: Any) -> Any:
        if is_pil_image(image) and image.mode != "RGB":
            return image.convert("RGB")
        return image


class Resize:
    """Bilinear resize; an int ``size`` matches the shorter side and keeps the aspect ratio."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, image: Any) -> Any:
        if is_pil_image(image):
            return self._resize_pil(image)
        height, width = image.shape[-2:]
        out_h, out_w = resized_size(height, width, self.size)
        if (out_h, out_w) == (height, width):
            return image
        batch = image.unsqueeze(0).float() if image.dim() == 3 else image.float()
        resized = F.interpolate(batch, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
        return resized.squeeze(0) if image.dim() == 3 else resized

    def _resize_pil(self, image: Any) -> Any:
        width, height = image.size
        out_h, out_w = resized_size(height, width, self.size)
        if (out_h, out_w) == (height, width):
            return image
        return image.resize((out_w, out_h), pil_image().Resampling.BILINEAR)


class CenterCrop:
    """Crop the centre ``size`` (int: square); zero padding where the crop reaches past the image."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))

    def __call__(self, image: Any) -> Any:
        crop_h, crop_w = self.size
        if is_pil_image(image):
            width, height = image.size
            top, left = _crop_origin(height, width, crop_h, crop_w)
            return image.crop((left, top, left + crop_w, top + crop_h))
        return _crop_tensor(image, crop_h, crop_w)


def _crop_origin(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """Top-left corner of the centred crop, rounded as torchvision does (may be negative: padding)."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


def _crop_tensor(image: torch.Tensor, crop_h: int, crop_w: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    if pad_h or pad_w:
        image = F.pad(image, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        height, width = image.shape[-2:]
    top, left = _crop_origin(height, width, crop_h, crop_w)
    return image[..., top : top + crop_h, left : left + crop_w]


class ToTensor:
    """PIL image or H x W x C array -> C x H x W tensor; 8-bit data is scaled to floats in [0, 1]."""

    def __call__(self, image: Any) -> torch.Tensor:
        array = _pil_to_array(image) if is_pil_image(image) else np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.get_default_dtype()).div(255)
        return tensor


def _pil_to_array(image: Any) -> np.ndarray:
    """Pixels as numpy; 1-bit images become 0/255 bytes, as in torchvision."""
    if image.mode == "1":
        return 255 * np.array(image, dtype=np.uint8)
    return np.array(image)


class Normalize:
    """``(x - mean) / std`` per channel of a float C x H x W (or N x C x H x W) tensor; not in place."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero after conversion to float, leading to division by zero: {std}")

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return (tensor - mean) / std


def imagenet_classification_pipeline() -> Compose:
    """TorchServe's image classifier / segmenter preprocessing: RGB, Resize 256, CenterCrop 224, ImageNet stats."""
    return Compose([ConvertRGB(), Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
