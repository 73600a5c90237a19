"""Code tokens and hashed token n-grams, shared by near-dedup and decontamination.

Both steps compare *code tokens*, not model tokens: identifiers (with Elixir's
trailing ?/!), numbers and single symbols, whitespace ignored. That makes them
independent of the tokenizer the dataset is built for and cheap to compute.

N-grams are hashed, not stored: each token gets a 64-bit hash (blake2b, cached,
since code vocabularies are Zipfian), and an n-gram's hash is a polynomial
combination of its tokens' hashes computed for all positions at once with
numpy. Collisions at 64 bits are negligible for our corpus sizes.
"""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np

TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[?!]?|\d+|[^\sA-Za-z0-9_]")

_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio)
_CACHE_LIMIT = 1_000_000
_local = threading.local()  # one token-hash cache per thread: builds may share a process


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def token_hashes(toks: list[str]) -> np.ndarray:
    """A uint64 hash per token (stable across processes and runs)."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    if len(cache) > _CACHE_LIMIT:
        cache.clear()  # bounded memory; the cache refills with the common tokens
    for tok in set(toks).difference(cache):
        cache[tok] = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
    return np.fromiter(map(cache.__getitem__, toks), dtype=np.uint64, count=len(toks))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of n consecutive tokens (empty if fewer than n tokens)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 wrap-around is the intended arithmetic
        acc = hashes[:count].copy()
        for k in range(1, n):
            acc = acc * _MULT + hashes[k : k + count]
        # A final avalanche so nearby windows spread over all bits.
        acc ^= acc >> np.uint64(33)
        acc *= np.uint64(0xFF51AFD7ED558CCD)
        acc ^= acc >> np.uint64(33)
    return acc


def shingle_hashes32(text: str, n: int) -> np.ndarray:
    """Distinct 32-bit hashes of a text's token n-grams (a MinHash input set)."""
    grams = ngram_hashes(token_hashes(tokens(text)), n)
    return np.unique((grams >> np.uint64(32)).astype(np.uint32))
