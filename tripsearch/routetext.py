"""A route's coordinates read from their JSON text into floats, without a Python object per point.

A trip's route is ``[[lon, lat], ...]``, often hundreds of points. Decoded
the usual way it becomes a list of tuples of two Python floats, which the
index then copies into an array and the collector later frees: most of
the time of parsing a trip. :func:`read_points` reads the text in one
compiled pass straight into an (n, 2) float64 array.

It takes only what it can read exactly: the JSON grammar of an array of
two-number arrays (whitespace anywhere JSON allows it), and numbers of at
most 15 significant digits whose power of ten is at most 22 away, each
then the correctly rounded double (Clinger's fast path: the digits and the
power of ten are both exact doubles, and one IEEE multiplication or
division rounds once). For anything else (more digits, a large exponent,
a wrong shape, not a number) it returns None, and the caller decodes the
text the general way, which also words the error.
"""

from __future__ import annotations

import msgspec
import numba
import numpy as np

__all__ = ["read_points"]

_POW10 = np.array([10.0**k for k in range(23)])  # exact doubles: 10^22 < 2^53 * 2^22


def read_points(text: bytes | memoryview | msgspec.Raw) -> np.ndarray | None:
    """Return the [lon, lat] rows of a JSON array of pairs of numbers, or None where the fast path does not apply.

    >>> read_points(b"[[2.3522, 48.8566], [4.8357,45.764]]").tolist()
    [[2.3522, 48.8566], [4.8357, 45.764]]
    >>> read_points(b"[[1, 2, 3]]") is None, read_points(b"[[0.1234567890123456, 1]]") is None
    (True, True)
    """
    out, n = _read(np.frombuffer(text, dtype=np.uint8), _POW10)
    return out[:n].reshape(-1, 2) if n >= 0 else None


@numba.njit(cache=True, nogil=True, inline="always")
def _skip_space(buf, i):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    n = len(buf)
    while i < n and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
        i += 1
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _number(buf, i, pow10):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Read the JSON number at ``buf[i]``: return (value, next position), or (0, -1) if it is not one the fast path reads exactly."""
    n = len(buf)
    negative = i < n and buf[i] == 45
    if negative:
        i += 1
    if i >= n or not 48 <= buf[i] <= 57:
        return 0.0, -1
    whole = buf[i] != 48  # a leading zero is the whole integer part
    start = i
    mantissa = 0
    if whole:
        while i < n:
            digit = np.int64(buf[i]) - 48
            if digit < 0 or digit > 9:
                break
            mantissa = mantissa * 10 + digit
            i += 1
    else:
        i += 1
    digits = i - start if whole else 0  # significant digits so far (counted, not read off the value: it wraps past 2^63)
    scale = 0
    integer = True  # no fraction, no exponent: the general decoder reads an integer
    if i < n and buf[i] == 46:
        integer = False
        i += 1
        first = i
        while i < n:
            digit = np.int64(buf[i]) - 48
            if digit < 0 or digit > 9:
                break
            mantissa = mantissa * 10 + digit
            i += 1
        scale = i - first
        if scale == 0 or scale > 22:
            return 0.0, -1
        if whole:
            digits += scale
        else:
            lead = first
            while lead < i and buf[lead] == 48:  # the fraction's leading zeros are not significant
                lead += 1
            digits = i - lead
    if digits > 15:  # the digits are no longer an exact double for sure
        return 0.0, -1
    exponent = 0
    if i < n and (buf[i] == 101 or buf[i] == 69):
        integer = False
        i += 1
        sign = 1
        if i < n and (buf[i] == 43 or buf[i] == 45):
            sign = -1 if buf[i] == 45 else 1
            i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return 0.0, -1
        while i < n and 48 <= buf[i] <= 57:
            exponent = exponent * 10 + (buf[i] - 48)
            i += 1
            if exponent > 1000:
                return 0.0, -1
        exponent *= sign
    power = exponent - scale
    value = float(mantissa)
    if power < 0:
        if power < -22:
            return 0.0, -1
        value /= pow10[-power]
    elif power > 0:
        if power > 22:
            return 0.0, -1
        value *= pow10[power]
    if negative and (mantissa or not integer):  # "-0" is the integer 0, read as 0.0 as the general decoder reads it; "-0.0" is -0.0
        value = -value
    return value, i


@numba.njit(cache=True, nogil=True)
def _read(buf, pow10):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Read ``[[a, b], [c, d], ...]`` from ``buf``: return the numbers and how many, or -1 if the text is not read exactly."""
    n = len(buf)
    commas = 0
    for c in buf:
        commas += c == 44
    out = np.empty(commas + 1, dtype=np.float64)  # as many numbers as commas and one, if the text is what it should be
    i = _skip_space(buf, 0)
    if i >= n or buf[i] != 91:
        return out, -1
    i += 1
    k = 0
    while True:
        i = _skip_space(buf, i)
        if i >= n or buf[i] != 91:
            return out, -1
        i += 1
        for j in range(2):
            i = _skip_space(buf, i)
            value, i = _number(buf, i, pow10)
            if i < 0 or k >= len(out):
                return out, -1
            out[k] = value
            k += 1
            i = _skip_space(buf, i)
            if i >= n or buf[i] != (44 if j == 0 else 93):  # "," between the two numbers, "]" after them
                return out, -1
            i += 1
        i = _skip_space(buf, i)
        if i >= n:
            return out, -1
        if buf[i] == 93:
            break
        if buf[i] != 44:
            return out, -1
        i += 1
    return out, (k if _skip_space(buf, i + 1) == n else -1)
