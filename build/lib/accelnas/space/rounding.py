"""The one channel-rounding rule (a leaf of `accelnas.space`)."""
from __future__ import annotations


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never below 90 % of ``value``.

    The one rounding rule for channels used by MobileNetV2/V3, EfficientNet and the EdgeTPU models.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)
