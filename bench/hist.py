"""A fixed-bucket latency histogram: 10 us steps below 10 ms, 1 ms below 1 s, 100 ms above."""

from __future__ import annotations

from typing import Final

SIZE: Final = 2990


def bucket(us: int) -> int:
    if us < 10_000:
        return us // 10 if us > 0 else 0
    if us < 1_000_000:
        return 1000 + (us - 10_000) // 1000
    return min(SIZE - 1, 1990 + (us - 1_000_000) // 100_000)


def upper_us(index: int) -> int:
    """The upper edge of a bucket, in microseconds (what percentiles report)."""
    if index < 1000:
        return (index + 1) * 10
    if index < 1990:
        return 10_000 + (index - 999) * 1000
    return 1_000_000 + (index - 1989) * 100_000


def new() -> list[int]:
    return [0] * SIZE


def merge(into: list[int], other: list[int]) -> None:
    for i, n in enumerate(other):
        if n:
            into[i] += n


def percentiles(hist: list[int], qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """Percentiles in milliseconds (upper bucket edge); empty histogram gives None."""
    total = sum(hist)
    out: dict[str, float] = {}
    if not total:
        return {f"p{q:g}": float("nan") for q in qs}
    targets = sorted((q, max(1, round(total * q / 100))) for q in qs)
    seen, i, k = 0, 0, 0
    while k < len(targets):
        seen += hist[i]
        while k < len(targets) and seen >= targets[k][1]:
            out[f"p{targets[k][0]:g}"] = round(upper_us(i) / 1000, 3)
            k += 1
        i += 1
    return out
