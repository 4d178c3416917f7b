"""Near-duplicate grouping in near-linear time and memory bounded by the input.

Two searches, both of which link items into connected groups with a union-find and never hold
the candidate pairs:

* :func:`hamming_groups` — 64-bit perceptual hashes within a Hamming distance. The hashes are
  cut into ``m`` blocks; two hashes within ``limit`` bits agree exactly on at least
  ``m - limit`` blocks (pigeonhole), so for every choice of ``m - limit`` blocks the hashes are
  sorted by those blocks' bits and only neighbours in the same run are compared, with a
  vectorised popcount (the "permuted tables" of Manku, Jain & Das Sarma, WWW 2007). ``m`` is
  chosen per input size from a cost model: more tables cost more sorting, longer keys cut the
  runs. Each pair is verified in the first table that finds it only, and identical hashes are
  collapsed before the search.
* :func:`jaccard_groups` — word sets whose Jaccard similarity reaches a threshold. Candidates
  come from MinHash signatures banded for locality-sensitive hashing (``b`` bands of ``r``
  rows, chosen so that a pair at the threshold is missed with probability under 1e-9); every
  candidate is verified exactly, so a group never holds a pair that is not similar, and inside
  an LSH bucket a member is compared with one member of each other group at a time, not with
  every member.

numpy is imported here only (imagehash depends on it).
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import combinations, count, pairwise
from typing import Any

_MASK64 = (1 << 64) - 1


class UnionFind:
    """Disjoint sets over ``0 … n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> int:
        a, b = self.find(i), self.find(j)
        if a == b:
            return a
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        return a

    def groups(self) -> Iterator[list[int]]:
        """The sets of more than one member, each sorted, in the order of their first
        member."""

        members: dict[int, list[int]] = {}
        size = self.size
        for i in range(len(self.parent)):
            r = self.find(i)
            if size[r] > 1:
                members.setdefault(r, []).append(i)
        yield from members.values()  # dicts keep insertion order: by first member


# --------------------------------------------------------------------------- Hamming


def _popcount(np: Any, x: Any) -> Any:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)


def plan_tables(n: int, limit: int, bits: int = 64) -> int:
    """The number of blocks ``m`` (``limit < m ≤ bits``) that minimises the estimated time of
    :func:`hamming_pairs` on ``n`` uniformly spread hashes, or 0 when comparing every pair
    costs less.

    The model, in nanoseconds, was fitted on 10⁵ and 10⁶ random hashes (``bench/
    dataset_scan.py``): a table costs a radix sort (10·n) for keys of up to 16 bits or an
    introsort (2.2·n·log₂ n) for longer ones, 15·n for building the key and gathering, and
    15 per candidate pair (n²/2 · 2^-key bits); comparing every pair costs 2 per pair and
    5 µs per row.
    """

    if n < 2:
        return 0
    best, best_cost = 0, n * n + 5000.0 * n
    log_n = math.log2(n)
    for m in range(limit + 1, min(bits, limit + 12) + 1):
        k = m - limit
        tables = math.comb(m, k)
        if tables > 4000:
            break
        edges = _block_edges(m, bits)
        key_bits = min(sum(edges[b + 1] - edges[b] for b in range(j, j + k))
                       for j in range(m - k + 1))
        sort = 10.0 * n if key_bits <= 16 else 2.2 * n * log_n
        cost = tables * (sort + 15.0 * n + 15.0 * n * n / 2 * 2.0 ** -key_bits)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def hamming_pairs(values: Any, limit: int, *, blocks: int | None = None,
                  chunk: int = 1 << 16, progress: Any = None) -> Iterator[tuple[Any, Any]]:
    """Index pairs ``(i, j)`` (two numpy arrays per chunk) of the distinct 64-bit
    ``values`` (a ``uint64`` array) that differ in at most ``limit`` bits, each pair once.

    Memory is O(len(values) + chunk) whatever the number of candidate pairs. ``progress``
    (a :class:`lorac.scan.dataset.Progress`) is told of each table done.
    """

    import numpy as np

    vals = np.ascontiguousarray(values, dtype=np.uint64)
    n = len(vals)
    if n < 2 or limit < 0:
        return
    m = plan_tables(n, limit) if blocks is None else blocks
    if m == 0:  # few hashes: every pair, a row block at a time
        for start in range(0, n - 1, max(1, chunk // max(1, n))):
            stop = min(n - 1, start + max(1, chunk // max(1, n)))
            for i in range(start, stop):
                j = np.arange(i + 1, n)
                near = _popcount(np, vals[i] ^ vals[j]) <= limit
                if near.any():
                    yield np.full(int(near.sum()), i), j[near]
        if progress is not None:
            progress.total = 1
            progress(1)
        return
    edges = _block_edges(m)
    k = m - limit
    if progress is not None:
        progress.total = math.comb(m, k)
    for table, chosen in enumerate(combinations(range(m), k), 1):
        # a pair belongs to the first table (in this order) whose blocks all agree: the blocks
        # before the last chosen one that are not chosen must each disagree
        earlier = [np.uint64(_span(edges, b)) for b in range(chosen[-1]) if b not in chosen]
        key = _table_key(np, vals, edges, chosen)
        # 16-bit keys sort by radix in O(n); longer ones by introsort (stability is not needed)
        order = np.argsort(key, kind="stable" if key.dtype == np.uint16 else None)
        sk = key[order]
        sv = vals[order]
        idx = np.flatnonzero(sk[:-1] == sk[1:])
        step = 1
        while idx.size:
            for lo in range(0, idx.size, chunk):
                part = idx[lo:lo + chunk]
                x = sv[part] ^ sv[part + step]
                keep = _popcount(np, x) <= limit
                for mask in earlier:
                    keep &= (x & mask) != 0
                if keep.any():
                    hit = part[keep]
                    yield order[hit], order[hit + step]
            step += 1
            idx = idx[idx + step < n]
            idx = idx[sk[idx] == sk[idx + step]]
        if progress is not None:
            progress(table)


def _block_edges(m: int, bits: int = 64) -> list[int]:
    return [round(k * bits / m) for k in range(m + 1)]


def _span(edges: list[int], b: int) -> int:
    return ((1 << (edges[b + 1] - edges[b])) - 1) << edges[b]


def _table_key(np: Any, vals: Any, edges: list[int], chosen: tuple[int, ...]) -> Any:
    """The bits of the ``chosen`` blocks of ``vals``, packed into the narrowest unsigned
    integer type that holds them."""

    width = sum(edges[b + 1] - edges[b] for b in chosen)
    dtype = np.uint16 if width <= 16 else np.uint32 if width <= 32 else np.uint64
    key = np.zeros(len(vals), dtype=np.uint64)
    offset = 0
    for b in chosen:
        size = edges[b + 1] - edges[b]
        part = (vals >> np.uint64(edges[b])) & np.uint64((1 << size) - 1)
        key |= part << np.uint64(offset) if offset else part
        offset += size
    return key.astype(dtype)


def hamming_groups(hashes: Sequence[int], limit: int, *,
                   linked_same: Callable[[list[int]], bool] | None = None,
                   progress: Any = None) -> Iterator[list[int]]:
    """Connected groups (more than one member, sorted, in the order of their first member) of
    ``hashes`` (64-bit ints) where an edge joins two items within ``limit`` bits.

    ``linked_same(members)``, given the indices of the items that share one hash value, says
    whether they are linked to each other when nothing else links them (default: yes) — the
    dataset rules use it to keep byte-identical files, already reported, out of the
    near-duplicate groups. Items with equal hashes are always in one group once any other item
    is within ``limit`` of them.
    """

    import numpy as np

    n = len(hashes)
    if n < 2:
        return
    arr = np.fromiter((h & _MASK64 for h in hashes), dtype=np.uint64, count=n)
    distinct, inverse = np.unique(arr, return_inverse=True)
    inverse = inverse.reshape(-1)
    uf = UnionFind(len(distinct))
    for a, b in hamming_pairs(distinct, limit, progress=progress):
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            uf.union(i, j)
    members_of: dict[int, list[int]] = {}
    counts = np.bincount(inverse, minlength=len(distinct))
    shared = counts > 1
    for i, v in enumerate(inverse.tolist()):
        if shared[v] or uf.size[uf.find(v)] > 1:
            members_of.setdefault(v, []).append(i)
    out: dict[int, list[int]] = {}
    for v, items in members_of.items():
        root = uf.find(v)
        if uf.size[root] == 1 and linked_same is not None and not linked_same(items):
            continue
        out.setdefault(root, []).extend(items)
    for group in sorted(out.values(), key=lambda g: min(g)):
        if len(group) > 1:
            yield sorted(group)


def max_distance(hashes: Sequence[int]) -> int:
    """The largest Hamming distance between two of ``hashes``."""

    import numpy as np

    vals = np.unique(np.fromiter((h & _MASK64 for h in hashes), dtype=np.uint64))
    best = 0
    for i in range(len(vals) - 1):
        best = max(best, int(_popcount(np, vals[i] ^ vals[i + 1:]).max()))
    return best


# --------------------------------------------------------------------------- Jaccard


def plan_bands(threshold: float, n: int = 1000, miss: float = 1e-9, *,
               chance: Callable[[int], float] | None = None,
               words: float = 15.0) -> tuple[int, int]:
    """(bands, rows) of a MinHash LSH index over ``n`` sets in which two sets at Jaccard
    similarity ``threshold`` share no band with probability below ``miss``.

    More rows make a band harder to share by chance but need more bands, and so more
    hashing. The rows minimise an estimate, in seconds: 5 ns per word (``words`` a set) and
    hash function, plus 1.5 µs per chance candidate, n²/2 · bands · ``chance(rows)`` — the
    probability that two unrelated sets agree on ``rows`` MinHash values, the mean of
    J^rows over pairs (default: J = 0.2, captions share boilerplate words) — among at most
    12 row counts from the most that keep ``threshold ** rows ≥ 0.5``, and at most 640 hash
    functions a set.
    """

    t = min(1.0, max(1e-6, threshold))
    if t >= 1:
        return 1, 8

    def bands_for(rows: int) -> int:
        return max(1, math.ceil(math.log(miss) / math.log1p(-(t ** rows))))

    agree = chance or (lambda r: 0.2 ** r)
    start = max(1, int(math.log(0.5) / math.log(t)))
    rows = [r for r in range(start, start + 12) if bands_for(r) * r <= _MAX_HASHES] or [start]
    best = min(rows, key=lambda r: (
        n * words * bands_for(r) * r * 5e-9 + n * n / 2 * bands_for(r) * agree(r) * 1.5e-6))
    return bands_for(best), best


def _chance(np: Any, flat: Any, lengths: Any, threshold: float,
            samples: int = 2000) -> Callable[[int], float]:
    """``rows → mean J^rows`` over random pairs of the sets below ``threshold`` (a sample of
    ``samples`` pairs, fixed seed): how often unrelated sets would share a band."""

    n = len(lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    rng = np.random.default_rng(0x5A3)
    a, b = rng.integers(0, n, samples), rng.integers(0, n, samples)
    values = []
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if i == j:
            continue
        x = set(flat[starts[i]:starts[i] + lengths[i]].tolist())
        y = set(flat[starts[j]:starts[j] + lengths[j]].tolist())
        sim = len(x & y) / len(x | y)
        if sim < threshold:
            values.append(sim)
    if not values:
        return lambda r: 0.2 ** r
    sims = np.array(values)
    return lambda r: max(float(np.mean(sims ** r)), 1e-12)


_MAX_HASHES = 640  # hash functions a set at most: low thresholds get fewer rows instead


def _mix(np: Any, x: Any) -> Any:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""

    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def jaccard_groups(token_sets: Iterable[Iterable[Any]], threshold: float, *,
                   progress: Any = None) -> Iterator[list[int]]:
    """Connected groups (more than one member, sorted, in the order of their first member) of
    ``token_sets`` (each an iterable of hashable tokens, read as a set; read once, so a
    generator keeps only the id arrays in memory) where an edge joins two non-empty sets
    whose Jaccard similarity is at least ``threshold``.

    Tokens become integer ids and each set a sorted id array (4 bytes a token, not a Python
    set per item); identical sets collapse; the distinct ones go through MinHash LSH and
    every candidate is verified exactly (a pair at the threshold is missed with probability
    below 1e-9)."""

    import numpy as np

    if threshold > 1:
        return
    vocab: dict[Any, int] = defaultdict(count().__next__)  # a new token gets the next id
    first: dict[bytes, int] = {}
    rep_of = array("l")
    reps: list[bytes] = []
    for tokens in token_sets:
        key = array("I", sorted({vocab[t] for t in tokens})).tobytes()
        r = first.get(key)
        if r is None:
            r = first[key] = len(reps)
            reps.append(key)
        rep_of.append(r)
    del vocab, first
    if len(rep_of) < 2:
        return
    uf = UnionFind(len(reps))
    live = [r for r, key in enumerate(reps) if key]
    if len(live) > 1:
        lengths = np.fromiter((len(reps[r]) // 4 for r in live), dtype=np.int64,
                              count=len(live))
        flat = np.frombuffer(b"".join(reps[r] for r in live), dtype=np.uint32)
        sets = _SetCache(reps)
        for bucket in _lsh_buckets(np, flat, lengths, threshold, progress):
            _link_bucket(uf, [live[i] for i in bucket], sets, threshold)
    out: dict[int, list[int]] = {}
    counts = [0] * len(reps)
    for r in rep_of:
        counts[r] += 1
    for i, r in enumerate(rep_of):
        if not reps[r]:
            continue
        root = uf.find(r)
        if uf.size[root] > 1 or counts[r] > 1:
            out.setdefault(root, []).append(i)
    for group in out.values():  # items in order: groups come out by first member
        if len(group) > 1:
            yield group


class _SetCache:
    """The id sets of the candidates being verified, decoded from their arrays on demand."""

    def __init__(self, reps: list[bytes]) -> None:
        self.reps = reps
        self.decoded: dict[int, frozenset[int]] = {}

    def __getitem__(self, r: int) -> frozenset[int]:
        found = self.decoded.get(r)
        if found is None:
            if len(self.decoded) > 4096:
                self.decoded.clear()
            found = self.decoded[r] = frozenset(array("I", self.reps[r]))
        return found


def _lsh_buckets(np: Any, flat: Any, lengths: Any, threshold: float,
                 progress: Any = None) -> Iterator[list[int]]:
    """Index lists of the sets (``flat`` token ids, ``lengths`` per set) that share a MinHash
    band (buckets of two or more)."""

    n = len(lengths)
    bands, rows = plan_bands(threshold, n, chance=_chance(np, flat, lengths, threshold),
                             words=float(lengths.mean()))
    if progress is not None:
        progress.total = bands
    ends = np.cumsum(lengths)
    # 32-bit hashes of the words and 32-bit multiply-xorshift permutations: half the memory
    # traffic of 64 bits; a collision only adds a candidate, which is verified. The ids are
    # dense (0 … vocabulary - 1), so each band permutes every word of the vocabulary once and
    # the sets gather their words' values: captions repeat words, and a gather costs less
    # than the multiply, add and xorshift it replaces
    vocab = int(flat.max()) + 1 if len(flat) else 0
    words = (_mix(np, np.arange(vocab, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
             >> np.uint64(32)).astype(np.uint32)
    rng = np.random.default_rng(0x10AC)
    seeds = rng.integers(1, 2 ** 32, size=(2, bands, rows), dtype=np.uint64).astype(
        np.uint32) | np.uint32(1)
    # the signatures of a band are computed for a slice of the sets at a time, as an
    # (words × rows) array: memory stays at about 2 MB per row whatever the input size
    per_chunk = max(1, (1 << 18) // max(1, rows))
    cuts = [0]
    while cuts[-1] < n:
        nxt = int(np.searchsorted(ends, ends[cuts[-1]] - lengths[cuts[-1]] + per_chunk,
                                  side="right"))
        cuts.append(min(n, max(nxt, cuts[-1] + 1)))
    shift = np.uint32(15)
    for band in range(bands):
        mul, add = seeds[0, band], seeds[1, band]
        permuted = words[:, None] * mul[None, :]  # (vocabulary × rows)
        permuted += add[None, :]
        permuted ^= permuted >> shift
        key = np.empty(n, dtype=np.uint64)
        for lo, hi in pairwise(cuts):
            w0 = int(ends[lo] - lengths[lo])
            # np.take along an axis copies whole rows: several times faster than [index]
            h = np.take(permuted, flat[w0:int(ends[hi - 1])], axis=0)
            sig = np.minimum.reduceat(h, ends[lo:hi] - lengths[lo:hi] - w0, axis=0)
            k = sig[:, 0].astype(np.uint64)
            for r in range(1, rows):
                k = _mix(np, k) ^ sig[:, r].astype(np.uint64)
            key[lo:hi] = k
        order = np.argsort(key)
        sk = key[order]
        edge = np.flatnonzero(sk[1:] != sk[:-1]) + 1
        bounds = np.concatenate(([0], edge, [n]))
        for s in np.flatnonzero(np.diff(bounds) > 1).tolist():
            yield order[bounds[s]:bounds[s + 1]].tolist()
        if progress is not None:
            progress(band + 1)


def _link_bucket(uf: UnionFind, members: list[int], sets: Any, threshold: float) -> None:
    """Union the members of one LSH bucket that are similar, comparing each member with the
    members of every other group in the bucket until one of them is similar."""

    by_root: dict[int, list[int]] = {}
    for x in members:
        rx = uf.find(x)
        for root in list(by_root):
            if root == rx or root not in by_root:
                continue
            if any(jaccard(sets[x], sets[y]) >= threshold for y in by_root[root]):
                merged = uf.union(rx, root)
                mine = by_root.pop(rx, [])
                theirs = by_root.pop(root)
                if len(theirs) < len(mine):
                    mine, theirs = theirs, mine
                theirs.extend(mine)  # the smaller list moves: O(L log L) per bucket
                by_root[merged] = theirs
                rx = merged
        by_root.setdefault(rx, []).append(x)


def keyed_groups(keys: Iterable[Any]) -> Iterator[list[int]]:
    """Groups (more than one member) of the items whose ``keys`` are equal."""

    found: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        found.setdefault(k, []).append(i)
    for group in found.values():
        if len(group) > 1:
            yield group
