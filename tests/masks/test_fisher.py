"""Empirical Fisher scores against a per-sample autograd loop written here."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from sparsam import fisher_scores
from sparsam.masks import fisher
from sparsam.masks.fisher import fisher_scores_official

import nets


def make(dtype=torch.float64):
    model = nets.make(0, dtype)
    with torch.no_grad():  # non-trivial running statistics, so that eval mode differs from train mode
        for _ in range(3):
            model(torch.randn(8, 2, 6, 6, dtype=dtype) * 2 + 1)
    return model


def data(sizes=(4, 4, 4), dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 2, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (b,), generator=g))
            for b in sizes]


def pick(model, names):
    return [dict(model.named_parameters())[n] for n in names]


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()])


def assert_unchanged(model, snap):
    state, modes, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == modes
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


def rel_close(a, b, tol=1e-5):
    a, b = a.double(), b.double()
    assert float((a - b).abs().max()) <= tol * float(b.abs().max()), float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("method", ["per_layer", "vmap"])
@pytest.mark.parametrize("start_train", [True, False], ids=["from-train", "from-eval"])
@pytest.mark.parametrize("chunk", [None, 3, 1])
def test_fisher_matches_per_sample_loop(start_train, chunk, method):
    model = make()
    model.train(start_train)
    names = ["fc.weight", "conv.weight", "bn.weight", "fc.bias"]
    params = pick(model, names)
    for p in model.parameters():  # known .grad fields that must survive
        p.grad = torch.full_like(p, 0.25)
    model.bn.bias.grad = None
    snap = snapshot(model)
    batches = data()
    scores = fisher_scores(model, params, batches, num_samples=10, chunk_size=chunk, method=method)
    assert_unchanged(model, snap)
    expected = nets.fisher_loop(model, batches, 10, names, train=False)
    assert [s.shape for s in scores] == [p.shape for p in params]
    for s, e in zip(scores, expected):
        assert float(e.abs().max()) > 0
        rel_close(s, e)
    # the eval-mode scores differ from train-mode ones (the model uses its running statistics)
    train_scores = nets.fisher_loop(model, batches, 10, names, train=True)
    assert float((train_scores[0] - expected[0]).abs().max()) > 1e-3 * float(expected[0].abs().max())
    # and from scores over fewer samples (the partial last batch counts)
    fewer = nets.fisher_loop(model, batches, 8, names, train=False)
    assert not torch.allclose(fewer[0], expected[0])


class Zoo(nn.Module):
    """Every case the per-layer method handles: strided, dilated and grouped convolutions, a Linear on
    a 3-D input, BatchNorm1d/2d, in-place ReLU on a layer's output, a module called twice, a layer
    whose output never reaches the loss, and a frozen input layer below the requested ones."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.strided = nn.Conv2d(6, 6, 3, stride=2, padding=(1, 2), dilation=(1, 2), groups=3)
        self.twice = nn.Conv2d(6, 6, 1)
        self.unused = nn.Linear(4, 4)
        self.token = nn.Linear(6, 5)
        self.bn1d = nn.BatchNorm1d(5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = self.bn(self.stem(x))
        torch.relu_(h)  # edits the BatchNorm output in place
        h = self.twice(torch.tanh(self.twice(self.strided(h))))
        t = self.token(h.flatten(2).transpose(1, 2))  # [N, positions, 5]
        self.unused(t[..., :4].detach())
        return self.head(torch.relu(self.bn1d(t.mean(1))))


def make_zoo(dtype=torch.float64):
    torch.manual_seed(0)
    model = Zoo().to(dtype)
    with torch.no_grad():
        for bn in (model.bn, model.bn1d):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model


KERNELS = {"vmap": ("vmap", None, None), "grouped-conv": ("per_layer", True, 1 << 30),
           "unfold-one-sample-blocks": ("per_layer", False, 1), "unfold-whole-chunk": ("per_layer", False, 1 << 30)}


@pytest.mark.parametrize("kernels", KERNELS)
def test_fisher_of_every_supported_layer_kind(kernels, monkeypatch):
    method, grouped, block_bytes = KERNELS[kernels]
    if method == "per_layer":  # each way of forming the per-sample products, whatever the shapes
        monkeypatch.setattr(fisher, "_grouped_conv_pays", lambda module, positions: grouped)
        monkeypatch.setattr(fisher, "_block_bytes", lambda device: block_bytes)
    model = make_zoo()
    model.stem.requires_grad_(False)  # its output still carries gradients for the layers above
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = pick(model, names)
    snap = snapshot(model)
    batches = data(sizes=(5, 4))
    scores = fisher_scores(model, params, batches, num_samples=9, chunk_size=4, method=method)
    assert_unchanged(model, snap)
    expected = nets.fisher_loop(model, batches, 9, names, train=False)
    for n, s, e in zip(names, scores, expected):
        if n.startswith("unused"):
            assert float(s.abs().max()) == 0.0 and float(e.abs().max()) == 0.0
            continue
        assert float(e.abs().max()) > 0, n
        rel_close(s, e)


def test_fisher_auto_falls_back_to_vmap_and_per_layer_refuses_other_modules():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.LayerNorm(48), nn.Linear(48, 3)).double()
    names = [n for n, _ in model.named_parameters()]
    batches = data(sizes=(4,))
    expected = nets.fisher_loop(model, batches, 4, names, train=False)
    for s, e in zip(fisher_scores(model, pick(model, names), batches, num_samples=4), expected):
        rel_close(s, e)
    with pytest.raises(ValueError, match="method='per_layer'"):
        fisher_scores(model, pick(model, names), batches, num_samples=4, method="per_layer")
    # per-layer is fine when only the parameters of supported layers are asked for
    only = ["0.weight", "3.bias"]
    for s, e in zip(fisher_scores(model, pick(model, only), batches, num_samples=4, method="per_layer"),
                    nets.fisher_loop(model, batches, 4, only, train=False)):
        rel_close(s, e)
    with pytest.raises(ValueError, match="method"):
        fisher_scores(model, pick(model, only), batches, num_samples=4, method="fast")


def test_fisher_float32_model_and_no_grad_context():
    model = make(torch.float32)
    names = [n for n, _ in model.named_parameters()]
    params = pick(model, names)
    batches = data(dtype=torch.float32, sizes=(5, 5))
    with torch.no_grad():
        scores = fisher_scores(model, params, batches, num_samples=7, chunk_size=2)
    expected = nets.fisher_loop(model, batches, 7, names, train=False)
    for s, e in zip(scores, expected):
        assert s.dtype == torch.float32
        rel_close(s, e, 1e-4)


def test_fisher_too_few_samples():
    model = make()
    with pytest.raises(ValueError, match="num_samples"):
        fisher_scores(model, list(model.parameters()), data(), num_samples=13)
    with pytest.raises(ValueError, match="num_samples"):
        fisher_scores_official(model, list(model.parameters()), data(), num_samples=13)
    with pytest.raises(ValueError, match="num_samples"):
        fisher_scores(model, list(model.parameters()), data(), num_samples=0)
    other = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="params"):
        fisher_scores(model, [other.weight], data(), num_samples=2)


@pytest.mark.parametrize("start_train", [True, False], ids=["from-train", "from-eval"])
def test_fisher_official_moves_bn_stats(start_train):
    model = make()
    model.train(start_train)
    for p in model.parameters():
        p.grad = torch.full_like(p, -1.5)
    names = ["conv.weight", "fc.weight"]
    params = pick(model, names)
    expected = nets.fisher_loop(model, data(), 9, names, train=True)
    before = {k: v.clone() for k, v in model.named_buffers()}
    grads = [p.grad.clone() for p in model.parameters()]
    scores = fisher_scores_official(model, params, data(), num_samples=9)
    for s, e in zip(scores, expected):
        rel_close(s, e)
    # the reproduced defect: BatchNorm running statistics moved (once per sample)
    assert int(model.bn.num_batches_tracked) == int(before["bn.num_batches_tracked"]) + 9
    assert not torch.equal(model.bn.running_mean, before["bn.running_mean"])
    # mode and .grad fields are restored
    assert model.training == start_train and model.bn.training == start_train
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_fisher_official_under_no_grad():
    """The official pass is called from SSAM.first_step, which runs under torch.no_grad()."""
    model = make()
    names = ["conv.weight"]
    params = pick(model, names)
    expected = nets.fisher_loop(model, data(), 4, names, train=True)
    with torch.no_grad():
        scores = fisher_scores_official(model, params, data(), num_samples=4)
    rel_close(scores[0], expected[0])
