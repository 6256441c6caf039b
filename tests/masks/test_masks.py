"""Mask patterns against brute-force Python loops written here."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sparsam.masks import patterns as masks

SHAPE_SETS = [
    [(8, 6, 3, 3), (8,), (10, 72), (10,)],
    [(5, 3, 3, 3), (7, 10), (3,)],
    [(4, 4, 1, 1), (2, 3, 5, 5), (13,), (1, 1)],
    [(17,)],
    [(6, 4, 2, 3), (9, 7)],
]


def distinct_scores(shapes, seed):
    """Scores with pairwise distinct values (a random permutation of 0..d-1, exact in float32)."""
    g = torch.Generator().manual_seed(seed)
    total = sum(math.prod(s) for s in shapes)
    flat = torch.randperm(total, generator=g).to(torch.float32)
    return [t.reshape(s) for t, s in zip(flat.split([math.prod(s) for s in shapes]), shapes)]


# ---------------------------------------------------------------- unstructured

@pytest.mark.parametrize("shapes", SHAPE_SETS)
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.73, 0.9, 0.999])
def test_unstructured_is_global_top_k(shapes, sparsity):
    scores = distinct_scores(shapes, seed=len(shapes) + int(sparsity * 1000))
    got = masks.unstructured(scores, sparsity)
    d = sum(s.numel() for s in scores)
    k = int((1 - sparsity) * d)
    assert [m.shape for m in got] == [s.shape for s in scores]
    assert all(m.dtype == torch.bool for m in got)
    assert sum(int(m.sum()) for m in got) == k
    # global top-k by a plain sort of (score, tensor index, flat index)
    entries = [(v, i, j) for i, s in enumerate(scores) for j, v in enumerate(s.reshape(-1).tolist())]
    top = {(i, j) for _, i, j in sorted(entries, reverse=True)[:k]}
    kept = {(i, j) for i, m in enumerate(got) for j, b in enumerate(m.reshape(-1).tolist()) if b}
    assert kept == top
    assert masks.density(got) == pytest.approx(k / d)


def test_unstructured_real_valued_scores():
    g = torch.Generator().manual_seed(3)
    scores = [torch.rand(7, 5, generator=g), torch.rand(11, generator=g)]
    got = masks.unstructured(scores, 0.6)
    flat = torch.cat([s.reshape(-1) for s in scores]).tolist()
    kept = [v for v, b in zip(flat, torch.cat([m.reshape(-1) for m in got]).tolist()) if b]
    dropped = [v for v, b in zip(flat, torch.cat([m.reshape(-1) for m in got]).tolist()) if not b]
    assert len(kept) == int(0.4 * 46)
    assert min(kept) > max(dropped)


# ---------------------------------------------------------------- N:M

def nm_violations(score, mask, n, m, dim):
    """Brute force: the (tensor-level) groups where ``mask`` is not exactly the top-min(n, size) scores.

    Conv ``[Co, Ci, kh, kw]`` / linear ``[Co, Ci]``: with dim="in" each output channel's entries are
    visited in (ci, kh, kw) order and cut into groups of ``m`` consecutive; with dim="out" each input
    position (ci, kh, kw) visits the output channels in order. 1-D tensors must be fully kept.
    """
    if score.dim() < 2:
        return [] if bool(mask.all()) else ["1-D tensor not fully kept"]
    co = score.shape[0]
    positions = list(itertools.product(*[range(k) for k in score.shape[1:]]))
    if dim == "in":
        lines = [[(o, *pos) for pos in positions] for o in range(co)]
    else:
        lines = [[(o, *pos) for o in range(co)] for pos in positions]
    bad = []
    for line in lines:
        for start in range(0, len(line), m):
            group = line[start:start + m]
            vals = [float(score[idx]) for idx in group]
            kept = {idx for idx in group if bool(mask[idx])}
            order = sorted(range(len(group)), key=lambda i: -vals[i])
            top = {group[i] for i in order[:min(n, len(group))]}
            if kept != top:
                bad.append(group[0])
    return bad


NM_SHAPES = [(8, 6, 3, 3), (5, 3, 3, 3), (6, 8, 1, 1), (4, 2, 5, 5), (10, 12), (7, 10), (3, 5), (9,)]


@pytest.mark.parametrize("dim", ["in", "out"])
@pytest.mark.parametrize("n,m", [(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (4, 4)])
def test_n_m_is_top_n_of_every_group(n, m, dim):
    scores = distinct_scores(NM_SHAPES, seed=10 * n + m)
    got = masks.n_m(scores, n, m, dim=dim)
    assert [x.shape for x in got] == [s.shape for s in scores]
    for s, mk in zip(scores, got):
        assert mk.dtype == torch.bool
        assert nm_violations(s, mk, n, m, dim) == [], (tuple(s.shape), n, m, dim)


def test_n_m_counts_and_partial_groups():
    # [Co=2, Ci*kh*kw=10] with 2:4 along "in": groups of 4, 4, 2 -> 2 + 2 + 2 kept per row
    s = distinct_scores([(2, 10)], seed=0)[0]
    assert masks.n_m([s], 2, 4)[0].sum(1).tolist() == [6, 6]
    # trailing group of 1 keeps min(n, 1) = 1
    s = distinct_scores([(3, 9)], seed=1)[0]
    assert masks.n_m([s], 3, 4)[0].sum(1).tolist() == [3 + 3 + 1] * 3
    # along "out": for every input position, the 3 output channels form one partial group of 3
    s = distinct_scores([(3, 2, 2, 2)], seed=2)[0]
    assert masks.n_m([s], 2, 4, dim="out")[0].sum(0).flatten().tolist() == [2] * 8
    # 1-D tensors are kept whole
    assert masks.n_m([torch.randn(5)], 1, 4)[0].all()


def test_checker_detects_wrong_masks():
    """The brute-force checker can fail: a shifted or transposed mask is reported."""
    s = distinct_scores([(6, 4, 3, 3)], seed=5)[0]
    good = masks.n_m([s], 2, 4, dim="in")[0]
    assert nm_violations(s, good, 2, 4, "in") == []
    assert nm_violations(s, good, 2, 4, "out") != []
    assert nm_violations(s, good.roll(1, dims=1), 2, 4, "in") != []


def official_nm_loop(score, n, m):
    """The official N:M (commit 9895bb4, SSAMF.update_mask + get_nm_mask) as plain loops.

    Conv: walk the (C_in·kh·kw, C_out) matrix scores.view(C_out, -1).t() in row-major order, keep the
    top-n of every m consecutive entries (ties: lower index), and read the resulting bits in that
    order as a [C_out, C_in, kh, kw] tensor in ITS row-major order. Linear: the same walk over the
    weight itself. Other tensors: all kept.
    """
    if score.dim() not in (2, 4):
        return torch.ones(score.shape, dtype=torch.bool)
    co = score.shape[0]
    rows = list(itertools.product(*[range(k) for k in score.shape[1:]]))
    if score.dim() == 4:
        walk = [float(score[(o, *pos)]) for pos in rows for o in range(co)]
    else:
        walk = score.reshape(-1).tolist()
    bits = []
    for start in range(0, len(walk), m):
        group = walk[start:start + m]
        order = sorted(range(len(group)), key=lambda i: (-group[i], i))
        bits += [i in order[:n] for i in range(len(group))]
    return torch.tensor(bits).reshape(score.shape)


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (4, 8, 3, 3), (6, 4, 2, 2), (8, 4, 1, 1), (12, 6, 1, 1),
                                   (10, 12), (6, 10), (5,)])
def test_n_m_official_is_the_official_procedure(shape):
    s = distinct_scores([shape], seed=sum(shape))[0]
    official = masks.n_m_official([s], 2, 4)[0]
    assert official.dtype == torch.bool
    assert torch.equal(official, official_nm_loop(s, 2, 4))


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (4, 8, 3, 3), (8, 4, 1, 1), (12, 6, 1, 1)])
def test_n_m_official_conv_misalignment(shape):
    """Conv masks (1×1 included) are the top-2 of no grouping; the missing transpose is the defect."""
    s = distinct_scores([shape], seed=sum(shape))[0]
    official = masks.n_m_official([s], 2, 4)[0]
    assert official.reshape(-1, 4).sum(1).eq(2).all()  # 2 of every 4 consecutive entries, as in memory ...
    assert len(nm_violations(s, official, 2, 4, "in")) > 0  # ... but not the top-2 of any grouping
    assert len(nm_violations(s, official, 2, 4, "out")) > 0
    # read back with the transpose, the same bits are the intended N:M along the output channels
    co = shape[0]
    intended = official.reshape(-1, co).t().reshape(shape)
    assert torch.equal(intended, masks.n_m([s], 2, 4, dim="out")[0])


def test_n_m_official_linear_and_errors():
    s = distinct_scores([(10, 12)], seed=1)[0]  # in_features a multiple of m: the correct N:M
    assert torch.equal(masks.n_m_official([s], 2, 4)[0], masks.n_m([s], 2, 4)[0])
    s = distinct_scores([(6, 10)], seed=2)[0]  # groups straddle rows, as the official reshape does
    assert not torch.equal(masks.n_m_official([s], 2, 4)[0], masks.n_m([s], 2, 4)[0])
    with pytest.raises(ValueError, match="multiple of m=4"):
        masks.n_m_official([torch.rand(3, 5)], 2, 4)
    with pytest.raises(ValueError, match="n must be"):
        masks.n_m_official([torch.rand(4, 4)], 5, 4)


# ---------------------------------------------------------------- ties

def test_top_k_takes_lower_indices_among_ties():
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (300,), generator=g).float()  # many ties
    for k in (0, 1, 7, 150, 299, 300):
        for largest in (True, False):
            got = sorted(masks.top_k(values, k, largest).tolist())
            order = sorted(range(300), key=lambda i: (-values[i] if largest else values[i], i))
            assert got == sorted(order[:k]), (k, largest)


def test_every_pattern_breaks_ties_by_index():
    flat = torch.tensor([1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 1.0, 1.0])
    assert masks.unstructured([flat], 0.5)[0].tolist() == [False, True, True, True, True, False, False, False]
    assert masks.unstructured([flat], 0.75)[0].tolist() == [False, True, True] + [False] * 5
    assert masks.n_m([flat.view(2, 4)], 2, 4)[0].flatten().tolist() == [False, True, True, False,
                                                                         True, False, True, False]
    equal = [torch.ones(4, 4), torch.ones(2, 4)]
    assert masks.structured(equal, 0.5, "filter")[0].all(1).tolist() == [True, True, True, False]
    assert masks.n_m_official([torch.ones(2, 2, 1, 1)], 1, 2)[0].flatten().tolist() == [True, False, True, False]


# ---------------------------------------------------------------- structured

def separated_scores(shapes, seed):
    """Random scores whose per-tensor (and per-row) means are far apart: no ties in the ranking."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randperm(100, generator=g)[:len(shapes)].tolist()
    out = []
    for off, shape in zip(offsets, shapes):
        base = torch.rand(shape, generator=g) * 0.01 + off
        if len(shape) >= 2:  # distinct row means as well
            rows = torch.randperm(shape[0], generator=g).to(torch.float32) * 0.1
            base = base + rows.view(-1, *[1] * (len(shape) - 1))
        out.append(base)
    return out


def greedy(scores, sparsity, granularity):
    """Hand-written greedy: units by decreasing mean score, each taken if it fits the remaining budget."""
    units = []
    for i, s in enumerate(scores):
        if granularity == "filter" and s.dim() >= 2:
            for r in range(s.shape[0]):
                vals = s[r].reshape(-1).tolist()
                units.append((sum(vals) / len(vals), i, r, len(vals)))
        else:
            vals = s.reshape(-1).tolist()
            units.append((sum(vals) / len(vals), i, None, len(vals)))
    budget = int((1 - sparsity) * sum(s.numel() for s in scores))
    out = [torch.zeros(s.shape, dtype=torch.bool) for s in scores]
    for _, i, r, size in sorted(units, key=lambda u: -u[0]):
        if size <= budget:
            budget -= size
            if r is None:
                out[i][...] = True
            else:
                out[i][r] = True
    return out


@pytest.mark.parametrize("shapes", SHAPE_SETS)
@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.8, 0.95])
def test_structured_layer(shapes, sparsity):
    scores = separated_scores(shapes, seed=len(shapes) + int(100 * sparsity))
    got = masks.structured(scores, sparsity, "layer")
    kept = sum(int(m.sum()) for m in got)
    total = sum(m.numel() for m in got)
    assert masks.density(got) == pytest.approx(kept / total)
    assert kept / total <= 1 - sparsity + 1e-12
    for m in got:  # whole tensors only
        assert bool(m.all()) or not bool(m.any())
    expected = greedy(scores, sparsity, "layer")
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("shapes", SHAPE_SETS)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.6, 0.9])
def test_structured_filter(shapes, sparsity):
    scores = separated_scores(shapes, seed=7 + len(shapes) + int(100 * sparsity))
    got = masks.structured(scores, sparsity, "filter")
    for m in got:
        if m.dim() >= 2:
            rows = m.reshape(m.shape[0], -1)
            assert all(bool(r.all()) or not bool(r.any()) for r in rows)
        else:
            assert bool(m.all()) or not bool(m.any())
    assert masks.density(got) <= 1 - sparsity + 1e-12
    expected = greedy(scores, sparsity, "filter")
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_structured_fills_budget_greedily():
    # means 3 > 2 > 1; sizes 60, 30, 10; budget int(0.5 * 100) = 50: the first does not fit,
    # the second and third do
    scores = [torch.full((6, 10), 3.0), torch.full((30,), 2.0), torch.full((2, 5), 1.0)]
    got = masks.structured(scores, 0.5, "layer")
    assert [bool(m.all()) for m in got] == [False, True, True]
    assert masks.density(got) == pytest.approx(0.4)


# ---------------------------------------------------------------- errors and parsing

@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), 1.5])
def test_sparsity_out_of_range(bad):
    scores = [torch.rand(4, 4)]
    with pytest.raises(ValueError, match="sparsity"):
        masks.unstructured(scores, bad)
    with pytest.raises(ValueError, match="sparsity"):
        masks.structured(scores, bad, "layer")
    with pytest.raises(ValueError, match="sparsity"):
        masks.from_pattern(scores, "filter", bad)


def test_argument_errors():
    scores = [torch.rand(4, 8)]
    with pytest.raises(ValueError, match=r"^n\b"):
        masks.n_m(scores, 0, 4)
    with pytest.raises(ValueError, match=r"^n\b"):
        masks.n_m(scores, 5, 4)
    with pytest.raises(ValueError, match=r"^m\b"):
        masks.n_m(scores, 1, 0)
    with pytest.raises(ValueError, match="dim"):
        masks.n_m(scores, 2, 4, dim="sideways")
    with pytest.raises(ValueError, match="granularity"):
        masks.structured(scores, 0.5, "block")
    with pytest.raises(ValueError, match="pattern"):
        masks.parse_pattern("3:2")
    with pytest.raises(ValueError, match="pattern"):
        masks.parse_pattern("0:4")
    with pytest.raises(ValueError, match="pattern"):
        masks.parse_pattern("foo")
    with pytest.raises(ValueError, match="pattern"):
        masks.from_pattern(scores, "foo", 0.5)


def test_parse_and_from_pattern():
    assert masks.parse_pattern("2:4") == ("n:m", 2, 4)
    assert masks.parse_pattern("unstructured")[0] == "unstructured"
    scores = distinct_scores([(4, 8), (4,)], seed=9)
    nm = masks.from_pattern(scores, "2:4", 0.5)
    assert nm_violations(scores[0], nm[0], 2, 4, "in") == [] and nm[1].all()
    out = masks.from_pattern(scores, "1:4", 0.75, dim="out")
    assert nm_violations(scores[0], out[0], 1, 4, "out") == []
    un = masks.from_pattern(scores, "unstructured", 0.25)
    assert sum(int(m.sum()) for m in un) == int(0.75 * 36)
