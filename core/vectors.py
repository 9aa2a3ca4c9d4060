"""Embedding vectors as the ledger keeps them: packed float32, little-endian, row after row.

Owns: `pack` (vectors -> bytes, checking they share one length), `unpack` (bytes -> lists of
floats) and `b64_vector` (one vector as OpenAI's `encoding_format: base64` gives it: the
base64 of its little-endian float32 bytes). 4 bytes a float: a 1,536-dimension vector is
6,144 bytes, against ~20-30 kB as JSON text. Must not: do I/O.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence

_LITTLE = sys.byteorder == "little"


def pack(vectors: Sequence[Sequence[float]]) -> tuple[bytes, int]:
    """(float32 bytes of every vector in order, the common length). Raises ValueError when
    there is no vector, a vector is empty, or their lengths differ."""
    if not vectors:
        raise ValueError("no vectors")
    dims = len(vectors[0])
    if dims == 0:
        raise ValueError("an empty vector")
    out = array("f")
    for i, vector in enumerate(vectors):
        if len(vector) != dims:
            raise ValueError(f"vector {i} has {len(vector)} dimensions, vector 0 has {dims}")
        out.extend(vector)
    if not _LITTLE:
        out.byteswap()
    return out.tobytes(), dims


def unpack(data: bytes, dims: int) -> list[list[float]]:
    """The vectors `pack` stored (as Python floats, i.e. float32 values widened)."""
    values = array("f")
    values.frombytes(data)
    if not _LITTLE:
        values.byteswap()
    if dims <= 0 or len(values) % dims:
        raise ValueError(f"{len(values)} floats do not make vectors of {dims}")
    return [values[i : i + dims].tolist() for i in range(0, len(values), dims)]


def b64_vector(vector: Sequence[float]) -> str:
    """One vector as base64 of its float32 little-endian bytes (OpenAI's base64 encoding)."""
    values = array("f", vector)
    if not _LITTLE:
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")
