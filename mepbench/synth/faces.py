"""Cartoon faces whose visual cues (mouth shape, brows, eyes, tears) are drawn into RGB video frames.

Faces are drawn with PIL at twice the output size and box-filtered down, so thin strokes stay visible at
112x112. A per-clip FaceStyle (position, skin, hair, background, head bob, blink) makes clips differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 112
FPS = 8
N_FRAMES = 16
_SUPERSAMPLE = 2

RGB = tuple[int, int, int]

_SKINS = ((241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (232, 190, 160))
_HAIRS = ((40, 28, 20), (90, 60, 30), (20, 20, 20), (150, 110, 60), (110, 100, 95))
_SHIRTS = ((60, 90, 140), (140, 50, 50), (70, 110, 70), (120, 120, 120), (180, 150, 90))
_BACKGROUNDS = ((226, 226, 220), (210, 222, 210), (236, 224, 205), (215, 215, 228), (200, 200, 200))
_INK = (45, 30, 30)
_MOUTH_INSIDE = (90, 20, 30)
_TEAR = (70, 150, 255)


@dataclass(frozen=True)
class FaceStyle:
    """Per-clip appearance: face centre, colours, and the timing of head bob and blink."""

    cx: float
    cy: float
    skin: RGB
    hair: RGB
    shirt: RGB
    background: RGB
    bob_hz: float
    bob_phase: float
    blink_frame: int


@dataclass(frozen=True)
class FaceLayout:
    """Feature centres of one frame in output pixel coordinates (after head bob)."""

    center: tuple[float, float]
    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    mouth: tuple[float, float]


def _jitter_colour(rng: np.random.Generator, colour: RGB, amount: int) -> RGB:
    shifted = np.clip(np.array(colour) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))


def random_style(rng: np.random.Generator) -> FaceStyle:
    """Draw a clip's appearance so that faces vary in place, colour and motion."""
    return FaceStyle(
        cx=float(SIZE / 2 + rng.uniform(-5, 5)),
        cy=float(SIZE / 2 + 2 + rng.uniform(-4, 4)),
        skin=_jitter_colour(rng, _SKINS[int(rng.integers(len(_SKINS)))], 8),
        hair=_jitter_colour(rng, _HAIRS[int(rng.integers(len(_HAIRS)))], 6),
        shirt=_jitter_colour(rng, _SHIRTS[int(rng.integers(len(_SHIRTS)))], 10),
        background=_jitter_colour(rng, _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))], 6),
        bob_hz=float(rng.uniform(0.4, 1.0)),
        bob_phase=float(rng.uniform(0, 2 * math.pi)),
        blink_frame=int(rng.integers(N_FRAMES)),
    )


def face_layout(style: FaceStyle, frame: int) -> FaceLayout:
    """Where the face and its features sit in `frame` (the head bobs gently over time)."""
    t = frame / FPS
    angle = 2 * math.pi * style.bob_hz * t + style.bob_phase
    cx, cy = style.cx + 1.0 * math.sin(0.5 * angle), style.cy + 1.5 * math.sin(angle)
    return FaceLayout((cx, cy), (cx - 14, cy - 8), (cx + 14, cy - 8), (cx, cy + 22))


class _Canvas:
    """ImageDraw wrapper taking output-pixel coordinates and drawing at the supersampled size."""

    def __init__(self, background: RGB):
        self.image = Image.new("RGB", (SIZE * _SUPERSAMPLE, SIZE * _SUPERSAMPLE), background)
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def _box(x: float, y: float, rx: float, ry: float) -> list[float]:
        s = _SUPERSAMPLE
        return [(x - rx) * s, (y - ry) * s, (x + rx) * s, (y + ry) * s]

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: RGB,
                outline: RGB | None = None, width: float = 0) -> None:
        self.draw.ellipse(self._box(x, y, rx, ry), fill=fill, outline=outline,
                          width=int(width * _SUPERSAMPLE))

    def arc(self, x: float, y: float, rx: float, ry: float, start: float, end: float, width: float) -> None:
        self.draw.arc(self._box(x, y, rx, ry), start, end, fill=_INK, width=int(width * _SUPERSAMPLE))

    def line(self, points: Iterable[tuple[float, float]], width: float, fill: RGB = _INK) -> None:
        s = _SUPERSAMPLE
        self.draw.line([(x * s, y * s) for x, y in points], fill=fill, width=int(width * s), joint="curve")

    def result(self) -> np.ndarray:
        return np.asarray(self.image.resize((SIZE, SIZE), Image.Resampling.BOX))


def _draw_eyes(canvas: _Canvas, layout: FaceLayout, wide: bool, blinking: bool) -> None:
    for x, y in (layout.left_eye, layout.right_eye):
        if blinking:
            canvas.line([(x - 7, y), (x + 7, y)], width=1.5)
            continue
        rx, ry, pupil = (8.5, 7.5, 2.5) if wide else (7.0, 4.0, 3.0)
        canvas.ellipse(x, y, rx, ry, fill=(250, 250, 250), outline=_INK, width=1)
        canvas.ellipse(x, y, pupil, pupil, fill=(25, 25, 35))


def _draw_brows(canvas: _Canvas, layout: FaceLayout, cues: set[str]) -> None:
    for (x, y), side in ((layout.left_eye, -1), (layout.right_eye, 1)):
        if "furrowed brows" in cues:
            canvas.line([(x + 9 * side, y - 13), (x - 7 * side, y - 6)], width=3)
        elif "raised eyebrows" in cues:
            canvas.arc(x, y - 14, 9, 5, 200, 340, width=2)
        else:
            canvas.line([(x - 8, y - 10), (x + 8, y - 10)], width=2)


def _draw_mouth(canvas: _Canvas, layout: FaceLayout, cues: set[str]) -> None:
    x, y = layout.mouth
    if "open mouth" in cues:
        canvas.ellipse(x, y, 8, 9, fill=_MOUTH_INSIDE, outline=_INK, width=1.5)
    elif "smiling mouth" in cues:
        canvas.arc(x, y - 6, 13, 9, 20, 160, width=2.5)
    elif "frowning mouth" in cues:
        canvas.arc(x, y + 7, 12, 7, 200, 340, width=2.5)
    else:
        canvas.line([(x - 10, y), (x + 10, y)], width=2)


def _draw_tears(canvas: _Canvas, layout: FaceLayout, frame: int) -> None:
    for (x, y), side in ((layout.left_eye, -1), (layout.right_eye, 1)):
        canvas.line([(x + 3 * side, y + 6), (x + 3 * side, y + 14)], width=1.5, fill=_TEAR)
        for k in range(2):
            drop = (frame * 1.5 + 7 * k) % 14
            canvas.ellipse(x + 3 * side, y + 9 + drop, 2.0, 3.0, fill=_TEAR)


def render_face(cues: Iterable[str], style: FaceStyle, frame: int) -> np.ndarray:
    """One uint8 RGB frame (SIZE, SIZE, 3) of a face showing `cues` (none: a neutral face)."""
    cue_set = set(cues)
    layout = face_layout(style, frame)
    cx, cy = layout.center
    canvas = _Canvas(style.background)
    canvas.ellipse(cx, cy + 62, 44, 20, fill=style.shirt)
    canvas.ellipse(cx, cy - 8, 37, 40, fill=style.hair)
    canvas.ellipse(cx - 34, cy, 5, 8, fill=style.skin)
    canvas.ellipse(cx + 34, cy, 5, 8, fill=style.skin)
    canvas.ellipse(cx, cy + 2, 33, 41, fill=style.skin)
    blinking = frame == style.blink_frame and "wide eyes" not in cue_set
    _draw_eyes(canvas, layout, "wide eyes" in cue_set, blinking)
    _draw_brows(canvas, layout, cue_set)
    canvas.line([(cx, cy - 2), (cx - 3, cy + 9), (cx + 2, cy + 10)], width=1.5)
    _draw_mouth(canvas, layout, cue_set)
    if "tears" in cue_set:
        _draw_tears(canvas, layout, frame)
    return canvas.result()


def render_frames(cues: Iterable[str], style: FaceStyle, n_frames: int = N_FRAMES) -> np.ndarray:
    """A clip's frames as uint8 RGB of shape (n_frames, SIZE, SIZE, 3)."""
    cue_list = list(cues)
    return np.stack([render_face(cue_list, style, i) for i in range(n_frames)])
