"""Exact and near-duplicate detection.

Exact: a hash of the text with all whitespace runs collapsed, so re-indented or
re-wrapped copies count as the same file.

Near: datasketch MinHash signatures (its permutations, its affine32 scheme) over
the file's distinct token 5-gram hashes (lexer.py), indexed in a datasketch
MinHashLSH. The expensive half, the signature, is
computed in the worker processes; the index lives in the coordinating process,
which sees files in preference order, so the first copy of a cluster (the newer
or more-downloaded source) is the one kept. LSH candidates are confirmed by the
estimated Jaccard of the two signatures before a file is dropped, which removes
most of the banding's false positives at the cost of 4 bytes per permutation per
kept file. The index costs about 3 KB per kept file (~600 MB for 200k files), the
coordinator's main memory cost on a large corpus.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from python_worker.dataset import lexer

BATCH = 512  # shingles per step: a 512 x 128 uint32 block (256 KB) stays in cache


def exact_key(text: str) -> bytes:
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=16).digest()


_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, the pre-mix datasketch's affine32 scheme applies."""
    s1, m1, s2, m2 = _FMIX
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s1)


def permutations(num_perm: int, seed: int) -> np.ndarray:
    """datasketch's own affine32 permutation parameters, shape (2, num_perm).

    Computed by the coordinator and handed to the workers, so the worker
    processes never import datasketch (and its scipy), ~40 MB less each.
    """
    from datasketch import MinHash

    return np.asarray(MinHash(num_perm=num_perm, seed=seed).permutations, dtype=np.uint32)


class Signer:
    """Worker side: text -> MinHash signature bytes (uint32 per permutation).

    The signature is exactly what `datasketch.MinHash(num_perm, seed)` (scheme
    affine32) gives after `update_batch` with our 32-bit shingle hashes and an
    identity hash function (a unit test checks this), computed with whole-array
    numpy operations instead of update_batch's per-value Python loop.
    """

    def __init__(self, shingle: int, perms: np.ndarray) -> None:
        self.shingle = shingle
        self._a = np.asarray(perms[0], dtype=np.uint32)
        self._b = np.asarray(perms[1], dtype=np.uint32)

    def sign_hashes(self, hashes32: np.ndarray) -> bytes | None:
        if len(hashes32) == 0:
            return None
        sig = np.full(len(self._a), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        for i in range(0, len(hashes32), BATCH):
            hv = _fmix32(hashes32[i : i + BATCH].astype(np.uint32))[:, None]
            np.minimum(sig, (hv * self._a + self._b).min(axis=0), out=sig)
        return sig.tobytes()

    def sign(self, text: str) -> bytes | None:
        return self.sign_hashes(lexer.shingle_hashes32(text, self.shingle))


def _band_key(band: bytes) -> bytes:
    return hashlib.blake2b(band, digest_size=8).digest()


class NearDupIndex:
    """Coordinator side: MinHashLSH plus the kept signatures for confirmation."""

    def __init__(self, threshold: float, num_perm: int, seed: int) -> None:
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self.seed = seed
        # 8-byte band keys instead of the raw 64-byte bands: ~15% less index memory.
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, hashfunc=_band_key)
        self._sigs = bytearray()
        self._count = 0
        self._sig_bytes = 4 * num_perm

    def _minhash(self, sig: bytes) -> Any:
        from datasketch import MinHash

        values = np.frombuffer(sig, dtype=np.uint32)
        return MinHash(seed=self.seed, hashvalues=values, scheme="affine32")

    def _stored(self, key: int) -> np.ndarray:
        o = key * self._sig_bytes
        return np.frombuffer(self._sigs, dtype=np.uint32, count=self.num_perm, offset=o)

    def seen(self, sig: bytes) -> bool:
        """True if a kept file is a near-duplicate; otherwise index this one and keep it."""
        m = self._minhash(sig)
        values = m.hashvalues
        for key in sorted(self.lsh.query(m)):
            if float(np.mean(self._stored(key) == values)) >= self.threshold:
                return True
        self.lsh.insert(self._count, m, check_duplication=False)
        self._sigs += sig
        self._count += 1
        return False
