"""Model builders: parameter counts against independent formulas, output shapes, name errors."""

from __future__ import annotations

import pytest
import torch

from sparsam.experiment.models import build_model


def conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cifar_resnet18_formula(classes: int, w: int = 64) -> int:
    total, cin = conv(3, w, 3) + bn(w), w
    for stage in range(4):
        cout = w * 2 ** stage
        for block in range(2):
            total += conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
            if block == 0 and cin != cout:
                total += conv(cin, cout, 1) + bn(cout)
            cin = cout
    return total + linear(cin, classes)


def wrn_formula(depth: int, k: int, classes: int) -> int:
    n, cin = (depth - 4) // 6, 16
    total = conv(3, 16, 3)
    for cout in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += bn(cin) + conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3)
            total += conv(cin, cout, 1) if cin != cout else 0
            cin = cout
    return total + bn(cin) + linear(cin, classes)


def resnet50_formula(classes: int) -> int:
    total, cin = conv(3, 64, 7) + bn(64), 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for block in range(blocks):
            total += conv(cin, planes, 1) + bn(planes) + conv(planes, planes, 3) + bn(planes)
            total += conv(planes, 4 * planes, 1) + bn(4 * planes)
            if block == 0:
                total += conv(cin, 4 * planes, 1) + bn(4 * planes)
            cin = 4 * planes
    return total + linear(cin, classes)


def vgg16_bn_formula(classes: int) -> int:
    total, cin = 0, 3
    for cout in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
        total += conv(cin, cout, 3, bias=True) + bn(cout)
        cin = cout
    return total + linear(512, classes)


def test_resnet18_count():
    assert cifar_resnet18_formula(10) == 11_173_962
    assert count(build_model("resnet18", 10)) == 11_173_962
    assert count(build_model("resnet18", 100)) == cifar_resnet18_formula(100)
    assert count(build_model("resnet18", 10, width=32)) == cifar_resnet18_formula(10, 32)


def test_wrn28_10_count():
    assert wrn_formula(28, 10, 10) == 36_479_194
    assert count(build_model("wrn28-10", 10)) == 36_479_194
    assert count(build_model("wrn-28-10", 100)) == wrn_formula(28, 10, 100) == 36_536_884
    assert count(build_model("wrn-16-2", 10)) == wrn_formula(16, 2, 10)


def test_resnet50_and_vgg_counts():
    assert resnet50_formula(1000) == 25_557_032
    assert count(build_model("resnet50", 1000)) == 25_557_032
    assert vgg16_bn_formula(10) == 14_728_266
    assert count(build_model("vgg16-bn", 10)) == 14_728_266
    stem = build_model("resnet50-cifar-stem", 10)
    assert count(stem) == resnet50_formula(10) - conv(3, 64, 7) + conv(3, 64, 3)  # only the first convolution
    assert stem.conv1.stride == (1, 1) and isinstance(stem.maxpool, torch.nn.Identity)
    features = {}
    stem.layer1.register_forward_hook(lambda m, i, o: features.update(layer1=o.shape))  # returns None
    stem.eval()(torch.randn(1, 3, 64, 64))
    assert features["layer1"][-2:] == (64, 64), "a 64-px image reaches the first stage at 64 px"
    vgg19_extra = conv(256, 256, 3, bias=True) + bn(256) + 2 * (conv(512, 512, 3, bias=True) + bn(512))
    assert count(build_model("vgg19-bn", 100)) == vgg16_bn_formula(100) + vgg19_extra


@pytest.mark.parametrize("name, size, classes", [
    ("resnet18", 32, 10), ("resnet-small", 32, 100), ("wrn-16-2", 32, 10), ("vgg11-bn", 32, 10),
    ("resnet50-tiny", 64, 10),
])
def test_output_shapes(name: str, size: int, classes: int):
    model = build_model(name, classes)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, classes)
    out.sum().backward()


def test_small_models_are_small():
    assert count(build_model("resnet-small", 10)) < 500_000
    assert count(build_model("resnet50-tiny", 10)) < 5_000_000
    assert len(build_model("resnet-small", 10, blocks=(1, 1, 1)).layers) == 3


def test_wrn_dropout():
    model = build_model("wrn-10-1", 10, dropout=0.3)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in model.modules())


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="name must be one of .*resnet18.*wrn"):
        build_model("resnet19", 10)
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        build_model("wrn-27-10", 10)
    with pytest.raises(ValueError, match="depth must be one of 11, 13, 16, 19"):
        build_model("vgg12-bn", 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet18", 0)
    with pytest.raises(ValueError, match="dropout"):
        build_model("wrn-10-1", 10, dropout=1.0)
    with pytest.raises(ValueError, match="width"):
        build_model("resnet-small", 10, width=0)
