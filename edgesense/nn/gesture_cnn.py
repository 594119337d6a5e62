"""``gesture_cnn``: a pure CNN of ~2.3K parameters for radar gestures (paper: 2.29K parameters, >93%).

Input ``x`` is a *gesture map* of shape ``(batch, in_channels, rows, frames)``, built by
:func:`edgesense.radar.pipeline.gesture_map` from the last ``frames`` RDIs of ``(C, D, R)``: rows
``0..D-1`` are each frame's Doppler profile (RDI maximum over range), rows ``D..D+R-1`` its range
profile (maximum over Doppler), one channel per RDI channel, plus an optional validity channel
(1 = received frame, 0 = restored or padded). Output: class logits ``(batch, classes)``.

Three 3x3 Conv-BN-ReLU + 2x2 max-pool stages, then a *flatten* (not a global pool) into the
classifier, so the classifier knows *where* in the window (in time, Doppler and range) things
happened -- the spotter relies on that: the model is trained to fire only when a gesture has just
ended (see :mod:`edgesense.nn.train_gesture`). All ops are int8-friendly (Conv, BN folded, ReLU,
MaxPool, Flatten, Gemm).
"""

from __future__ import annotations

import torch
from torch import nn

from edgesense.nn.layers import ConvBNReLU
from edgesense.nn.registry import register_model

__all__ = ["GestureCNN", "gesture_cnn"]


class GestureCNN(nn.Module):
    """Tiny CNN over a ``(in_channels, rows, frames)`` gesture map."""

    def __init__(self, in_channels: int, rows: int, frames: int, num_classes: int,
                 widths: tuple[int, int, int] = (8, 12, 4)) -> None:
        super().__init__()
        if rows < 8 or frames < 8:
            raise ValueError(f"gesture_cnn needs at least 8 rows and 8 frames, got {rows}x{frames}")
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            ConvBNReLU(in_channels, w1, 3), nn.MaxPool2d(2),
            ConvBNReLU(w1, w2, 3), nn.MaxPool2d(2),
            ConvBNReLU(w2, w3, 3), nn.MaxPool2d(2),
        )
        flat = w3 * (rows // 8) * (frames // 8)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("gesture_cnn")
def gesture_cnn(in_channels: int = 2, rows: int = 64, frames: int = 40, num_classes: int = 5,
                **kw) -> GestureCNN:
    """The gesture CNN: 2,293 parameters for 1 RDI channel + validity, 32x32 RDIs, 40 frames, 5 classes;
    2,365 for ad60's 2-channel (presence + motion) RDIs."""
    return GestureCNN(in_channels, rows, frames, num_classes, **kw)
