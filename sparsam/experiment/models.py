"""The papers' networks: CIFAR ResNet-18, WideResNet-28-10, VGG-BN and torchvision's ResNet-50.

:func:`build_model` maps a name (:data:`MODELS`) to a freshly initialised network. The CIFAR models
take 32×32 inputs (3×3 stems, no max-pool); the ResNet-50 family is torchvision's ImageNet design.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet, vgg as tv_vgg

from .._checks import check_int, check_range

__all__ = ["MODELS", "CifarResNet", "WideResNet", "CifarVGG", "resnet18", "resnet_small", "wide_resnet",
           "vgg_bn", "resnet50", "resnet50_cifar_stem", "resnet50_tiny", "constructor", "build_model", "model_stages"]

MODELS = ("resnet18", "resnet-small", "wrn28-10", "wrn-<depth>-<widen>", "vgg16-bn", "vgg<11|13|16|19>-bn",
          "resnet50", "resnet50-cifar-stem", "resnet50-tiny")


def _init_weights(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan-out) convs, zero conv biases, unit BN."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CifarResNet(nn.Module):
    """ResNet of torchvision BasicBlocks for 32×32 inputs: 3×3 stride-1 stem, no max-pool.

    ``blocks[i]`` blocks in stage ``i`` with ``width * 2**i`` channels (stride 2 from stage 1 on).
    """

    def __init__(self, blocks: Sequence[int], width: int = 64, num_classes: int = 10):
        super().__init__()
        check_int("width", width, 1)
        check_int("num_classes", num_classes, 1)
        if not blocks or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty sequence of integers >= 1, got {blocks!r}")
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, channels = [], width
        for i, count in enumerate(blocks):
            planes, stride = width * 2 ** i, 1 if i == 0 else 2
            for j in range(count):
                downsample = None
                if j == 0 and (stride != 1 or channels != planes):
                    downsample = nn.Sequential(nn.Conv2d(channels, planes, 1, stride, bias=False),
                                               nn.BatchNorm2d(planes))
                stages.append(tv_resnet.BasicBlock(channels, planes, stride if j == 0 else 1, downsample))
                channels = planes
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _WideBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3×3-BN-ReLU-dropout-conv3×3, 1×1 conv shortcut on shape change."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(in_planes), nn.BatchNorm2d(planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = (nn.Conv2d(in_planes, planes, 1, stride, bias=False)
                         if stride != 1 or in_planes != planes else None)

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(o)
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(o)))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-``depth``-``widen`` (Zagoruyko & Komodakis 2016) for 32×32 inputs, pre-activation blocks."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        check_int("widen", widen, 1)
        check_int("num_classes", num_classes, 1)
        check_range("dropout", dropout, 0.0, 1.0)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth!r}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False)]
        for stage in range(3):
            for j in range(n):
                stride = 2 if stage > 0 and j == 0 else 1
                layers.append(_WideBlock(widths[stage] if j == 0 else widths[stage + 1], widths[stage + 1],
                                         stride, dropout))
        layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[3], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class CifarVGG(nn.Module):
    """VGG-``depth`` with batch norm (torchvision's layer lists) and one Linear(512, classes) head."""

    def __init__(self, depth: int = 16, num_classes: int = 10):
        super().__init__()
        configs = {11: "A", 13: "B", 16: "D", 19: "E"}
        if depth not in configs:
            raise ValueError(f"depth must be one of 11, 13, 16, 19, got {depth!r}")
        check_int("num_classes", num_classes, 1)
        self.features = tv_vgg.make_layers(tv_vgg.cfgs[configs[depth]], batch_norm=True)
        self.fc = nn.Linear(512, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def resnet18(num_classes: int = 10, width: int = 64) -> CifarResNet:
    """CIFAR ResNet-18 (11,173,962 parameters at width 64, 10 classes)."""
    return CifarResNet((2, 2, 2, 2), width, num_classes)


def resnet_small(num_classes: int = 10, width: int = 16, blocks: Sequence[int] = (1, 1, 1, 1)) -> CifarResNet:
    """A small CIFAR ResNet for CPU quick profiles (ResNet-18 design at a quarter width, one block a stage)."""
    return CifarResNet(blocks, width, num_classes)


def wide_resnet(depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0) -> WideResNet:
    """WRN-depth-widen (WRN-28-10: 36,479,194 parameters for 10 classes)."""
    return WideResNet(depth, widen, num_classes, dropout)


def vgg_bn(depth: int = 16, num_classes: int = 10) -> CifarVGG:
    """CIFAR VGG-BN of ``depth`` 11, 13, 16 or 19."""
    return CifarVGG(depth, num_classes)


def resnet50(num_classes: int = 1000) -> tv_resnet.ResNet:
    """torchvision's ResNet-50, untrained (25,557,032 parameters for 1000 classes)."""
    return tv_resnet.resnet50(weights=None, num_classes=check_int("num_classes", num_classes, 1))


def resnet50_cifar_stem(num_classes: int = 1000) -> tv_resnet.ResNet:
    """torchvision's ResNet-50 with a CIFAR-style stem for small images: a 3×3 stride-1 convolution and no
    max-pool (a 64-px image reaches the first stage at 64 px, not 16)."""
    net = resnet50(num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def resnet50_tiny(num_classes: int = 10, width_per_group: int = 16) -> tv_resnet.ResNet:
    """ResNet-50's design (torchvision Bottleneck ResNet) at one block a stage and narrow bottlenecks, for tests."""
    check_int("width_per_group", width_per_group, 1)
    return tv_resnet.ResNet(tv_resnet.Bottleneck, [1, 1, 1, 1], check_int("num_classes", num_classes, 1),
                            width_per_group=width_per_group)


def constructor(name: str) -> tuple[Any, tuple[int, ...]]:
    """The constructor of the network called ``name`` (see :data:`MODELS`) and its leading arguments;
    an unknown name raises ``ValueError`` listing the known ones (so configs can check names early)."""
    simple = {"resnet18": resnet18, "resnet-small": resnet_small, "resnet50": resnet50,
              "resnet50-cifar-stem": resnet50_cifar_stem, "resnet50-tiny": resnet50_tiny}
    if isinstance(name, str) and name in simple:
        return simple[name], ()
    if isinstance(name, str) and (match := re.fullmatch(r"wrn-?(\d+)-(\d+)", name)):
        return wide_resnet, (int(match[1]), int(match[2]))
    if isinstance(name, str) and (match := re.fullmatch(r"vgg(\d+)-bn", name)):
        return vgg_bn, (int(match[1]),)
    raise ValueError(f"name must be one of {', '.join(MODELS)}, got {name!r}")


def build_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """The untrained network called ``name`` (see :data:`MODELS`); ``kwargs`` go to its constructor."""
    build, args = constructor(name)
    return build(*args, num_classes=num_classes, **kwargs)


def model_stages(model: nn.Module) -> list[nn.Module]:
    """The networks of this module as chains of stages sharing the model's modules, for
    :class:`sparsam.optim.sparse_ascent.SparseAscentSAM` and :func:`sparsam.masks.cost.layer_costs`.

    CIFAR ResNets: ``[stem, block, ..., block, head]``; torchvision ResNets: ``[conv1, bn1, relu,
    maxpool, block, ..., block, head]``; WideResNet and VGG-BN: ``[*features, head]``, where ``head`` is
    global average pooling, flatten and the model's ``fc``. ``run_stages(stages, x)`` equals
    ``model(x)``, and every stage but the head is a module the model's forward calls. Other models:
    pass the stages yourself.
    """
    def head(fc: nn.Module) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), fc)

    if isinstance(model, CifarResNet):
        return [model.stem, *model.layers, head(model.fc)]
    if isinstance(model, tv_resnet.ResNet):
        blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
        return [model.conv1, model.bn1, model.relu, model.maxpool, *blocks, head(model.fc)]
    if isinstance(model, (WideResNet, CifarVGG)):
        return [*model.features, head(model.fc)]
    raise ValueError(f"model: no stage split known for {type(model).__name__} (known: CifarResNet, torchvision "
                     "ResNet, WideResNet, CifarVGG); pass the stages yourself")
