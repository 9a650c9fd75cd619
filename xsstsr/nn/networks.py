"""The generator and the critic (PyTorch).

Imported lazily: ``import xsstsr`` does not import torch. The method is described in
docs/guide/training.rst.

The generator sees a window of consecutive low-resolution SST frames (plus
optional fusion sources and a land/sea mask channel) and predicts a correction
that is added to a bicubic upsampling of the latest frame, so at initialisation
it is exactly bicubic interpolation. A rational factor ``p/q`` (2.5 = 5/2) is
served exactly by sub-pixel upsampling by ``p`` and average pooling by ``q``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "type": "residual-subpixel",
    "features": 32,
    "blocks": 4,
    "up_features": 32,
    "fill_iterations": 4,
}


ANOMALY_RADIUS = 2  # the local mean removed from the inputs is a 5x5 box
#: With ``scale_radius``, the local RMS of the anomalies never falls below this (normalised
#: units, where the training record's typical anomaly is 1): flat or filled land stays finite.
SCALE_FLOOR = 1e-3


def receptive_halo(architecture: dict[str, Any], pool: int) -> int:
    """Halo in low-resolution pixels that covers the whole pipeline's receptive field.

    Each 3x3 convolution and each fill iteration reaches one pixel further: fill,
    head, two per residual block, the body's closing conv, the upsampling conv and
    the sub-pixel conv, after the 5x5 local mean removed from the inputs and the window
    of the local scale (``scale_radius``); bicubic's two-pixel support lies inside the
    same reach. One pixel of margin, rounded up to a multiple of ``pool`` so that crops
    fall on whole fine cells.
    """
    reach = (
        int(architecture["fill_iterations"])
        + ANOMALY_RADIUS
        + int(architecture.get("scale_radius", 0))
        + 4
        + 2 * int(architecture["blocks"])
        + 1
    )
    return -(-reach // pool) * pool


def box_sum3(values: Tensor) -> Tensor:
    """3 x 3 sums over the last two axes, zero outside the field.

    Shifted adds: several times faster than ``avg_pool2d`` on the CPU, and exact on the
    integer counts of :func:`fill_nan`.
    """
    padded = F.pad(values, (1, 1, 1, 1))
    rows = padded[..., :, :-2] + padded[..., :, 1:-1] + padded[..., :, 2:]
    return rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]


def fill_nan(frames: Tensor, iterations: int) -> Tensor:
    """Fill NaN by repeated 3x3 averaging of valid neighbours, then with 0.

    Local and deterministic, so a tiled fill equals a whole-field fill inside the
    halo. ``frames`` is (batch, channels, y, x) in normalised units, where 0 is
    the climatological mean. Returns a contiguous (not channels-last) tensor: the
    pooling that follows is several times faster on the CPU in that layout.
    """
    frames = frames.contiguous()
    valid = torch.isfinite(frames)
    if bool(valid.all()):  # nothing to fill: the loop below would return the input unchanged
        return frames
    zero = torch.zeros((), dtype=frames.dtype, device=frames.device)
    values = torch.where(valid, frames, zero)
    weight = valid.to(frames.dtype)
    for _ in range(iterations):
        total = box_sum3(values * weight)
        count = box_sum3(weight)  # whole numbers: sums of 0 and 1
        grown = torch.where(count > 0.5, total / count.clamp_min(1.0), values)
        values = torch.where(weight > 0, values, grown)
        weight = torch.where(weight > 0, weight, (count > 0.5).to(frames.dtype))
    return torch.where(weight > 0, values, zero)


class ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Generator(nn.Module):
    """Residual sub-pixel super-resolution generator.

    With ``conserve`` the output's area averages over each coarse cell equal the input's
    latest frame (:func:`conserve_means`), on the ``upsample`` grid before pooling.

    Parameters
    ----------
    in_frames : int
        Number of low-resolution frames (window x number of sources).
    upsample, pool : int
        The factor is ``upsample / pool``.
    scale_radius : int
        0, or the radius (coarse cells) of a window over which the RMS of the latest
        frame's anomalies is taken: the inputs are divided by it and the correction
        multiplied by it, so a field with twice the anomalies gets twice the correction.
        One network then serves quiet and eddying, fine and coarse inputs alike.
    """

    def __init__(
        self,
        in_frames: int,
        upsample: int,
        pool: int = 1,
        features: int = 32,
        blocks: int = 4,
        up_features: int = 16,
        fill_iterations: int = 4,
        conserve: bool = False,
        scale_radius: int = 0,
    ) -> None:
        super().__init__()
        self.conserve = conserve
        self.scale_radius = scale_radius
        self.in_frames = in_frames
        self.upsample = upsample
        self.pool = pool
        self.fill_iterations = fill_iterations
        self.head = nn.Conv2d(in_frames + 1, features, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(features) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.up = nn.Conv2d(features, up_features, 3, padding=1)
        # sub-pixel conv: all fine-grid work happens at the coarse grid (ESPCN), which is
        # several times cheaper than convolving at the fine grid
        self.tail = nn.Conv2d(up_features, upsample * upsample, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upsample)
        self.act = nn.LeakyReLU(0.2)
        # Start as exact bicubic interpolation: the correction branch outputs zero.
        nn.init.zeros_(self.tail.weight)
        if self.tail.bias is not None:
            nn.init.zeros_(self.tail.bias)

    def base(self, latest: Tensor) -> Tensor:
        """Bicubic upsampling of the latest (filled) frame to the ``upsample`` grid."""
        return F.interpolate(
            latest, scale_factor=self.upsample, mode="bicubic", align_corners=False
        )

    def upsampled_input(self, frames: Tensor) -> Tensor:
        """Bicubic upsampling of the latest frame on the output grid (the critic's condition)."""
        out = self.base(fill_nan(frames[:, -1:], self.fill_iterations))
        return F.avg_pool2d(out, self.pool) if self.pool > 1 else out

    def forward(self, frames: Tensor, autocast: torch.dtype | None = None) -> Tensor:
        """Map (batch, in_frames, y, x) normalised frames (NaN = land) to the fine grid.

        The last frame is the target time's SST. Returns (batch, 1, y*f, x*f).
        ``autocast`` (``torch.float16`` or ``torch.bfloat16``) runs the correction branch in
        that precision; the bicubic base, which carries the field's full range, stays float32.
        """
        valid = torch.isfinite(frames[:, -1:])
        filled = fill_nan(frames, self.fill_iterations)
        # The network sees anomalies from the latest frame's local mean, so its correction
        # does not change when a constant is added to the field (another region or season).
        size = 2 * ANOMALY_RADIUS + 1
        local = F.avg_pool2d(
            filled[:, -1:], size, stride=1, padding=ANOMALY_RADIUS, count_include_pad=False
        )
        anomalies = filled - local
        scale = None
        if self.scale_radius:
            scale = self.local_scale(anomalies[:, -1:], valid)
            anomalies = anomalies / scale
        x = torch.cat([anomalies, valid.to(filled.dtype)], dim=1)
        if frames.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # the convolutions' layout
        with torch.autocast(
            device_type=frames.device.type,
            dtype=autocast or torch.bfloat16,  # any supported dtype when disabled
            enabled=autocast is not None,
        ):
            feat = self.act(self.head(x))
            feat = feat + self.body_tail(self.body(feat))
            residual = self.tail(self.act(self.up(feat)))
        residual = residual.float() if scale is None else residual.float() * scale
        out = self.base(filled[:, -1:]) + self.shuffle(residual)
        if self.conserve:
            out = conserve_means(out, filled[:, -1:], self.upsample, valid)
        if self.pool > 1:
            out = F.avg_pool2d(out, self.pool)
        return out

    def local_scale(self, anomalies: Tensor, ocean: Tensor) -> Tensor:
        """RMS of ``anomalies`` over the ocean cells of a (2 r + 1)^2 window, floored at
        :data:`SCALE_FLOOR`: land's filled values (the fill's step to 0 inland) never set
        the scale of the coast."""
        r = self.scale_radius
        weight = ocean.to(anomalies.dtype)
        total = F.avg_pool2d(anomalies * anomalies * weight, 2 * r + 1, stride=1, padding=r)
        count = F.avg_pool2d(weight, 2 * r + 1, stride=1, padding=r)
        power = total / count.clamp_min(1e-6)
        return torch.sqrt(power + SCALE_FLOOR**2)


def conserve_means(
    fine: Tensor, coarse: Tensor, factor: int, ocean: Tensor | None = None
) -> Tensor:
    """Shift each ``factor x factor`` block of ``fine`` so that its mean is ``coarse``.

    The orthogonal projection onto the fields whose area averages are the coarse input:
    when the input is the area average of the truth (as in training without a target),
    it can only bring the field closer to the truth, and it leaves the output without a
    bias against its input. With ``ocean`` (the coarse cells that are not land) only cells
    whose 3 x 3 neighbourhood is all ocean are shifted: a coastal cell's average covers
    its ocean part only, which the block's mean over all its fine cells is not. Each block
    uses its own coarse cell and its neighbours, inside the halo.
    """
    shift = coarse - F.avg_pool2d(fine, factor)
    if ocean is not None:
        # min over the 3 x 3 neighbourhood; the padding of max_pool is -inf, so cells
        # outside the field do not count as land
        interior = -F.max_pool2d(-ocean.to(fine.dtype), 3, stride=1, padding=1)
        shift = shift * interior
    return fine + F.interpolate(shift, scale_factor=factor, mode="nearest")


class Critic(nn.Module):
    """WGAN-GP critic conditioned on the upsampled input; no batch normalisation."""

    def __init__(self, features: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3  # field, upsampled input, mask
        # every layer strides: the critic's double backward (gradient penalty) dominates
        # training time, and a full-resolution first layer would triple it
        for out in (features // 2, features, features * 2, features * 2):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1)]
            layers += [nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, field: Tensor, cond: Tensor) -> Tensor:
        """``field`` (b, 1, y, x), ``cond`` (b, 2, y, x): upsampled input and mask."""
        h = self.features(torch.cat([field, cond], dim=1))
        return self.head(h.mean(dim=(2, 3))).squeeze(1)


def build_generator(metadata: dict[str, Any]) -> Generator:
    arch = metadata["architecture"]
    return Generator(
        in_frames=int(metadata["window"]) * len(metadata["inputs"]),
        upsample=int(metadata["upsample"]),
        pool=int(metadata["pool"]),
        features=int(arch["features"]),
        blocks=int(arch["blocks"]),
        up_features=int(arch["up_features"]),
        fill_iterations=int(arch["fill_iterations"]),
        conserve=bool(arch.get("conserve", False)),
        scale_radius=int(arch.get("scale_radius", 0)),
    )
