"""Near-duplicate grouping (lorac/scan/neighbours.py) against brute-force references."""

from __future__ import annotations

import itertools
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lorac.scan import neighbours as nb


def _reference_groups(n: int, linked) -> list[list[int]]:
    uf = nb.UnionFind(n)
    for i, j in itertools.combinations(range(n), 2):
        if linked(i, j):
            uf.union(i, j)
    return list(uf.groups())


@st.composite
def _clustered_hashes(draw: st.DrawFn) -> list[int]:
    """Hashes around a few centres, so that near pairs and chains of them occur."""

    centres = draw(st.lists(st.integers(0, 2 ** 64 - 1), min_size=1, max_size=5))
    out = []
    for _ in range(draw(st.integers(0, 40))):
        h = draw(st.sampled_from(centres))
        for bit in draw(st.lists(st.integers(0, 63), max_size=10)):
            h ^= 1 << bit
        out.append(h)
    return out


@settings(max_examples=150, deadline=None)
@given(_clustered_hashes(), st.integers(0, 12))
def test_hamming_groups_equal_brute_force(hashes: list[int], limit: int) -> None:
    expected = _reference_groups(
        len(hashes), lambda i, j: (hashes[i] ^ hashes[j]).bit_count() <= limit)
    assert list(nb.hamming_groups(hashes, limit)) == expected


@settings(max_examples=80, deadline=None)
@given(_clustered_hashes(), st.integers(0, 10), st.integers(0, 4))
def test_every_table_plan_reports_each_near_pair_once(hashes: list[int], limit: int,
                                                      extra: int) -> None:
    values = np.unique(np.array(hashes, dtype=np.uint64))
    expected = {(i, j) for i, j in itertools.combinations(range(len(values)), 2)
                if (int(values[i]) ^ int(values[j])).bit_count() <= limit}
    for blocks in (0, limit + 1 + extra):
        found = [pair for a, b in nb.hamming_pairs(values, limit, blocks=blocks)
                 for pair in zip(a.tolist(), b.tolist(), strict=True)]
        assert len(found) == len(set(found))  # each pair once, whatever the tables
        assert {tuple(sorted(p)) for p in found} == expected


@settings(max_examples=60, deadline=None)
@given(_clustered_hashes(), st.integers(0, 8), st.data())
def test_identical_files_link_only_through_another_image(hashes: list[int], limit: int,
                                                         data: st.DataObject) -> None:
    """The dataset rules' rule: two byte-identical files are not near-duplicates of each
    other (LRC519 reports them), but both join the group of any other image near them."""

    copies = data.draw(st.lists(st.booleans(), min_size=len(hashes), max_size=len(hashes)))
    same = list(range(len(hashes)))  # the file each item is a byte-identical copy of
    for i in range(1, len(hashes)):
        if copies[i]:
            hashes[i], same[i] = hashes[i - 1], same[i - 1]

    def linked(i: int, j: int) -> bool:
        return same[i] != same[j] and (hashes[i] ^ hashes[j]).bit_count() <= limit

    expected = _reference_groups(len(hashes), linked)
    got = list(nb.hamming_groups(hashes, limit,
                                 linked_same=lambda m: len({same[i] for i in m}) > 1))
    assert got == expected


@st.composite
def _word_sets(draw: st.DrawFn) -> list[frozenset[str]]:
    vocab = [f"w{i}" for i in range(draw(st.integers(2, 30)))]
    bases = draw(st.lists(st.sets(st.sampled_from(vocab), max_size=14), min_size=1,
                          max_size=4))
    out = []
    for _ in range(draw(st.integers(0, 40))):
        s = set(draw(st.sampled_from(bases)))
        s -= draw(st.sets(st.sampled_from(vocab), max_size=2))
        s |= draw(st.sets(st.sampled_from(vocab), max_size=2))
        out.append(frozenset(s))
    return out


@settings(max_examples=150, deadline=None)
@given(_word_sets(), st.sampled_from([0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0]))
def test_jaccard_groups_equal_brute_force(sets: list[frozenset[str]], t: float) -> None:
    expected = _reference_groups(len(sets), lambda i, j: nb.jaccard(sets[i], sets[j]) >= t)
    assert list(nb.jaccard_groups(sets, t)) == expected


def test_jaccard_groups_at_scale_find_the_planted_pairs() -> None:
    rng = random.Random(3)
    vocab = [f"tag{i}" for i in range(3000)]
    sets: list[frozenset[str]] = []
    for i in range(3000):
        if i % 50 == 1:  # one word more than the previous caption: Jaccard 13/14 ≥ 0.9
            sets.append(sets[-1] | {"extra"})
        else:
            sets.append(frozenset(["ohwx", "woman", *rng.sample(vocab, 11)]))
    groups = list(nb.jaccard_groups(sets, 0.9))
    assert groups == [[i - 1, i] for i in range(1, 3000, 50)]


def test_plans() -> None:
    assert nb.plan_tables(1, 6) == 0
    assert nb.plan_tables(10 ** 6, 6) > 7  # more tables than the plain pigeonhole at scale
    bands, rows = nb.plan_bands(0.9)
    assert (1 - 0.9 ** rows) ** bands < 1e-9
    assert nb.max_distance([0, 0b111, 0b1]) == 3


def test_progress_reaches_the_end() -> None:
    import io

    from lorac.scan.dataset import Progress

    for run in (lambda bar: nb.hamming_groups([random.getrandbits(64) for _ in range(5000)], 6,
                                              progress=bar),
                lambda bar: nb.hamming_groups([1, 2, 3], 6, progress=bar),  # every pair
                lambda bar: nb.jaccard_groups([frozenset({str(i), "a"}) for i in range(50)],
                                              0.9, progress=bar)):
        out = io.StringIO()
        bar = Progress(1, "grouping", out, enabled=True)
        list(run(bar))
        last = out.getvalue().rsplit("\r", 1)[-1]
        assert last == f"grouping [{'#' * 30}] {bar.total}/{bar.total}\n"
