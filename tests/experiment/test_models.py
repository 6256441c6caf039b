"""Model builders against independent references: parameter counts and multiply-adds by formulas written
from the papers' architecture tables (and the published totals they reproduce), feature-map sizes per
stage, the initialisation rule, the shortcuts, dropout, output shapes and name errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

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
    """He et al. 2016 (Table 1, "18-layer") with the CIFAR stem of the SAM/SSAM code bases (kuangliu's
    pytorch-cifar ResNet18): a 3×3 stem, four stages of two BasicBlocks (two 3×3 convs with BN each) at
    widths w, 2w, 4w, 8w, a 1×1 projection with BN where the shape changes, a linear head. For w = 64
    and 10 classes: 11,173,962, the published count of CIFAR ResNet-18."""
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
    """Zagoruyko & Komodakis 2016, Table 1: conv1 3×3 with 16 channels; groups conv2, conv3, conv4 of
    N = (depth - 4) / 6 pre-activation blocks B(3,3) (BN-ReLU-conv3×3, twice) at widths 16k, 32k, 64k,
    a 1×1 conv shortcut (no BN) where the shape changes; a final BN-ReLU and the linear head. For
    WRN-28-10 and 10 classes: 36,479,194, the paper's 36.5M."""
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


def conv_macs(cin: int, cout: int, k: int, size: int) -> int:
    """Multiply-adds of a k×k convolution producing a size×size map: one per weight per output pixel."""
    return cin * cout * k * k * size * size


def resnet18_macs(classes: int, w: int = 64) -> int:
    """Forward multiply-adds of CIFAR ResNet-18 on one 32×32 image, layer by layer from the design of
    :func:`cifar_resnet18_formula`: stage s runs at 32 / 2**s pixels (stride 2 in the first conv and the
    projection of stages 1-3). For w = 64 it is 555,422,720, the published 0.56 GMACs."""
    total, cin = conv_macs(3, w, 3, 32), w
    for stage in range(4):
        cout, size = w * 2 ** stage, 32 // 2 ** stage
        for block in range(2):
            total += conv_macs(cin, cout, 3, size) + conv_macs(cout, cout, 3, size)
            if block == 0 and cin != cout:
                total += conv_macs(cin, cout, 1, size)
            cin = cout
    return total + cin * classes


def wrn_macs(depth: int, k: int, classes: int) -> int:
    """Forward multiply-adds of WRN-depth-k on one 32×32 image, from the design of :func:`wrn_formula`:
    the groups run at 32, 16 and 8 pixels. WRN-28-10: 5,243,328,768 (the commonly quoted 5.25 G)."""
    n, cin = (depth - 4) // 6, 16
    total = conv_macs(3, 16, 3, 32)
    for cout, size in ((16 * k, 32), (32 * k, 16), (64 * k, 8)):
        for _ in range(n):
            total += conv_macs(cin, cout, 3, size) + conv_macs(cout, cout, 3, size)
            total += conv_macs(cin, cout, 1, size) if cin != cout else 0
            cin = cout
    return total + cin * classes


def meta_flops(name: str, classes: int, **kwargs) -> int:
    """FLOPs that torch's FlopCounterMode counts for one forward of a 32×32 image, on the meta device
    (shapes only: no weights are allocated, no arithmetic is done)."""
    with torch.device("meta"):
        model = build_model(name, classes, **kwargs)
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 32, 32, device="meta"))
    return counter.get_total_flops()


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


def test_forward_multiply_adds_equal_the_formula_and_the_published_totals():
    assert resnet18_macs(10) == 555_422_720 and resnet18_macs(10) == pytest.approx(0.56e9, rel=0.01)
    assert wrn_macs(28, 10, 10) == pytest.approx(5.25e9, rel=0.01)
    # FlopCounterMode counts a multiply and an add apart (2 FLOPs a multiply-add); BN, ReLU, pooling: 0
    assert meta_flops("resnet18", 10) == 2 * resnet18_macs(10)
    assert meta_flops("resnet18", 100, width=16) == 2 * resnet18_macs(100, 16)
    assert meta_flops("wrn28-10", 10) == 2 * wrn_macs(28, 10, 10)
    assert meta_flops("wrn-16-2", 100) == 2 * wrn_macs(16, 2, 100)


def stage_outputs(model: torch.nn.Module, blocks: list[torch.nn.Module], size: int = 32) -> list[tuple[int, ...]]:
    """(channels, height, width) of each block's output in one forward of a batch of two, by forward hooks."""
    shapes: list[tuple[int, ...]] = []
    handles = [b.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for b in blocks]
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, size, size))
    for handle in handles:
        handle.remove()
    return shapes


def test_feature_maps_halve_at_each_stage():
    resnet = build_model("resnet18", 10, width=4)
    assert stage_outputs(resnet, list(resnet.layers)) == [
        (4, 32, 32), (4, 32, 32), (8, 16, 16), (8, 16, 16), (16, 8, 8), (16, 8, 8), (32, 4, 4), (32, 4, 4)]
    wrn = build_model("wrn-16-2", 10)
    blocks = [m for m in wrn.features if hasattr(m, "conv2")]
    assert stage_outputs(wrn, blocks) == [(32, 32, 32), (32, 32, 32), (64, 16, 16), (64, 16, 16),
                                          (128, 8, 8), (128, 8, 8)]


@pytest.mark.parametrize("name, kwargs", [("resnet18", {"width": 16}), ("wrn-16-2", {}), ("vgg11-bn", {})])
def test_initialisation_is_kaiming_normal_fan_out_with_zero_biases_and_unit_batch_norm(name, kwargs):
    """models._init_weights: conv weights N(0, 2 / fan_out) with fan_out = C_out·k·k (He et al. 2015 for
    ReLU, torchvision's ResNet rule), conv biases 0, BN weights 1 and biases 0. PyTorch's default conv
    init (uniform, std 1 / sqrt(3 fan_in)) is 2.4 times narrower for a square conv; a uniform law never
    exceeds sqrt(3) = 1.73 standard deviations, a normal one does in 8% of its draws."""
    torch.manual_seed(0)
    model = build_model(name, 10, **kwargs)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    for conv in convs:
        w = conv.weight.detach().double()
        c_out, _, kh, kw = w.shape
        expected = math.sqrt(2 / (c_out * kh * kw))
        assert float(w.std()) == pytest.approx(expected, rel=0.1), conv
        assert abs(float(w.mean())) < 4 * expected / math.sqrt(w.numel()), conv
        if w.numel() >= 1000:
            assert float(w.abs().max()) > 2.5 * expected, conv   # a normal law's tails, not a uniform one
        assert conv.bias is None or not conv.bias.any(), conv
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bool((b.weight == 1).all()) and not b.bias.any() for b in bns)


def test_wide_blocks_pass_their_input_through_the_shortcut():
    """Zero a wide block's residual branch (its last conv): what is left is the shortcut, the input
    itself where the shape stays, the 1×1 conv of the pre-activated input where it changes."""
    torch.manual_seed(0)
    wrn = build_model("wrn-16-2", 10).eval()
    same, change = wrn.features[2], wrn.features[3]
    assert same.shortcut is None and change.shortcut is not None and change.conv1.stride == (2, 2)
    x, wide = torch.randn(2, 32, 32, 32), torch.randn(2, 32, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(same(x), x, atol=1e-3)                  # the branch adds something
        same.conv2.weight.zero_()
        assert torch.equal(same(x), x)
        pre = F.relu(change.bn1(wide))
        assert not torch.allclose(change(wide), F.conv2d(pre, change.shortcut.weight, stride=2), atol=1e-3)
        change.conv2.weight.zero_()
        assert torch.equal(change(wide), F.conv2d(pre, change.shortcut.weight, stride=2))


def test_resnet_blocks_pass_their_input_through_the_shortcut():
    """The same for CIFAR ResNet's BasicBlocks (ReLU after the sum): a zeroed last BN leaves relu(x), or
    relu of the strided 1×1 projection with its BN where the shape changes."""
    torch.manual_seed(0)
    resnet = build_model("resnet18", 10, width=4).eval()
    same, change = resnet.layers[1], resnet.layers[2]
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        for block in (same, change):
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
        assert torch.equal(same(x), F.relu(x))
        projection = change.downsample
        assert projection[0].stride == (2, 2)
        assert torch.equal(change(x), F.relu(projection[1](F.conv2d(x, projection[0].weight, stride=2))))


def test_wrn_dropout_is_active_in_training_only():
    """Dropout (between the two convs of every wide block) makes two training forwards of one batch
    differ; in eval mode, or at dropout 0, two forwards are equal (BN uses batch statistics in training,
    which do not change between the two forwards)."""
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    model = build_model("wrn-10-1", 10, dropout=0.3)
    calls = []
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.register_forward_hook(lambda m, i, o: calls.append((float((o == 0).double().mean()),
                                                                  float((i[0] == 0).double().mean()))))
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        assert len(calls) == 2 * 3                                      # once per block and forward
        assert all(after > before + 0.1 for after, before in calls)     # it zeroes a share of the entries
        model.eval()
        assert torch.equal(model(x), model(x))
        torch.manual_seed(0)
        plain = build_model("wrn-10-1", 10).train()
        assert torch.equal(plain(x), plain(x))
