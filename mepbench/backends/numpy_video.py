"""A numpy stand-in for the Qwen2-VL video processor, for environments without torchvision.

Every transformers 5.x video processor is torchvision-backed, and no torchvision works with the CPU
torch build used here (research/env-feasibility.md §2c). This class reproduces Qwen2-VL's patch
layout (resize to a multiple of patch*merge, normalise, split into temporal x spatial patches in
merge-window order) so the stock Qwen processors and models can be used unchanged. It is only used
when torchvision is missing; otherwise the stock `Qwen2VLVideoProcessor` is loaded.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_FPS = 2.0


def torchvision_available() -> bool:
    """Whether torchvision imports (transformers' own check, so both agree)."""
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


class NumpyVideoProcessor:
    """Duck-typed `Qwen2VLVideoProcessor`: (T,H,W,3) uint8 frames -> flattened patches + grid_thw."""

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(self, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2,
                 image_mean: tuple[float, ...] = CLIP_MEAN, image_std: tuple[float, ...] = CLIP_STD,
                 min_pixels: int = 56 * 56, max_pixels: int = 224 * 224):
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.image_mean = np.asarray(image_mean, np.float32)
        self.image_std = np.asarray(image_std, np.float32)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels

    @classmethod
    def from_pretrained(cls, path: str | Path) -> NumpyVideoProcessor:
        """Settings from a checkpoint's video_preprocessor_config.json (or preprocessor_config.json)."""
        cfg: dict[str, Any] = {}
        for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
            f = Path(path) / name
            if f.is_file():
                cfg.update(json.loads(f.read_text()))
        size = cfg.get("size") or {}
        kwargs = {k: cfg[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean",
                                       "image_std", "min_pixels", "max_pixels") if cfg.get(k) is not None}
        kwargs.setdefault("min_pixels", size.get("shortest_edge", 56 * 56))
        kwargs.setdefault("max_pixels", size.get("longest_edge", 224 * 224))
        return cls(**kwargs)

    def _resize(self, frames: np.ndarray) -> np.ndarray:
        """Resize frames so height and width are multiples of patch*merge within the pixel budget."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        t, h, w, _ = frames.shape
        new_h, new_w = smart_resize(h, w, factor=self.patch_size * self.merge_size,
                                    min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        if (new_h, new_w) == (h, w):
            return frames
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.BICUBIC)) for f in frames])

    def _patchify(self, frames: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Normalised patches of one clip, rows ordered (t, h-window, w-window, h-in, w-in)."""
        x = (self._resize(np.asarray(frames, np.uint8)).astype(np.float32) / 255.0 - self.image_mean) / self.image_std
        x = x.transpose(0, 3, 1, 2)
        tps, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
        if x.shape[0] % tps:
            x = np.concatenate([x, np.repeat(x[-1:], tps - x.shape[0] % tps, axis=0)])
        t, c, h, w = x.shape
        gt, gh, gw = t // tps, h // p, w // p
        x = x.reshape(gt, tps, c, gh // m, m, p, gw // m, m, p)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, c * tps * p * p), [gt, gh, gw]

    def __call__(self, videos: Any, return_tensors: str | None = "pt", fps: float | None = None,
                 return_metadata: bool = False, **_: Any):
        """Process a clip or a list of clips; extra processor kwargs (size, device...) are ignored."""
        from transformers import BatchFeature
        from transformers.video_utils import VideoMetadata

        clips = [videos] if isinstance(videos, np.ndarray) and videos.ndim == 4 else list(videos)
        patches, grids = zip(*(self._patchify(np.asarray(c)) for c in clips))
        data: dict[str, Any] = {"pixel_values_videos": np.concatenate(patches), "video_grid_thw": np.asarray(grids)}
        out = BatchFeature(data, tensor_type=return_tensors or "pt")
        if return_metadata:
            rate = fps or DEFAULT_FPS
            out["video_metadata"] = [VideoMetadata(total_num_frames=len(c), fps=rate,
                                                   frames_indices=list(range(len(c)))) for c in clips]
        return out

    def get_num_of_video_patches(self, num_frames: int, height: int, width: int, videos_kwargs: Any = None) -> int:
        """Patch count for a clip of this shape (used by processors to size placeholders)."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        h, w = smart_resize(height, width, factor=self.patch_size * self.merge_size,
                            min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        grid_t = -(-num_frames // self.temporal_patch_size)
        return grid_t * (h // self.patch_size) * (w // self.patch_size)


def vision_processors(path: str | Path) -> tuple[Any, Any]:
    """Image + video processors: the stock ones with torchvision, else PIL images + numpy video."""
    if torchvision_available():
        from transformers import AutoImageProcessor, AutoVideoProcessor

        return AutoImageProcessor.from_pretrained(path), AutoVideoProcessor.from_pretrained(path)
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil.from_pretrained(path), NumpyVideoProcessor.from_pretrained(path)


class _SkipVideoClassCheck:
    """Processor mixin accepting a duck-typed video processor (the stock check needs torchvision)."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any):
        if argument_name == "video_processor":
            return type(argument)
        return super().check_argument_for_proper_class(argument_name, argument)  # type: ignore[misc]


@lru_cache(maxsize=None)
def processor_without_video_check(base: type) -> type:
    """Subclass of a transformers processor class that takes `NumpyVideoProcessor` as its video processor."""
    return type(f"{base.__name__}NumpyVideo", (_SkipVideoClassCheck, base), {})
