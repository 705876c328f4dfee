"""Classifiers with normalisation inside: x in [0,1] -> logits.

Every model here is a `Classifier`:

    model(x)           logits, shape (B, num_classes); x is (B, C, H, W) in [0, 1]
    model.features(x)  penultimate representation, shape (B, model.feature_dim)
    model.fc           the last linear layer: model(x) == model.fc(model.features(x))

Normalisation ((x - mean) / std) is the first layer, so attacks and epsilons stay
in pixel units. Architectures:

    small_cnn        a 4-conv CNN for the quick preset (CPU, seconds per epoch)
    preact_resnet18  PreAct ResNet-18 (He et al. 2016), the usual CIFAR AT model
    wide_resnet      WideResNet-28-10 / 34-10 (Zagoruyko & Komodakis 2016; TRADES)
    resnet18         torchvision ResNet-18, for larger images (Imagenette)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean/std are buffers saved in the state_dict."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """normalize -> body (any backbone ending in a flat feature vector) -> fc."""

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = body
        self.feature_dim = feature_dim
        self.fc = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation, (B, C, H, W) in [0,1] -> (B, feature_dim)."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (B, C, H, W) in [0,1] -> (B, num_classes)."""
        return self.fc(self.features(x))


def _conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def small_cnn_body(in_channels: int, width: int = 32) -> tuple[nn.Module, int]:
    """Two conv blocks with max-pooling, then global average pooling -> 4*width features."""
    w = width
    body = nn.Sequential(
        _conv_bn(in_channels, w), _conv_bn(w, w), nn.MaxPool2d(2),
        _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),
        _conv_bn(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return body, 4 * w


# ----------------------------------------------------------------------------- PreAct ResNet-18

class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


def preact_resnet18_body(in_channels: int) -> tuple[nn.Module, int]:
    """PreAct ResNet-18 for 32x32 inputs: 4 stages of 2 blocks, 64..512 channels."""
    layers, cin = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)], 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.BatchNorm2d(512), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 512


# ----------------------------------------------------------------------------- WideResNet

def wide_resnet_body(in_channels: int, depth: int = 28, widen: int = 10) -> tuple[nn.Module, int]:
    """WideResNet-depth-widen: 3 stages of (depth-4)/6 blocks, 16*widen..64*widen channels."""
    if (depth - 4) % 6:
        raise ValueError(f"WideResNet depth must be 6n+4 (28, 34...), got {depth}")
    n, widths = (depth - 4) // 6, [16 * widen, 32 * widen, 64 * widen]
    layers, cin = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)], 16
    for cout, stride in zip(widths, [1, 2, 2]):
        for i in range(n):
            layers.append(PreActBlock(cin, cout, stride if i == 0 else 1))  # WRN blocks are pre-activation blocks
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin


def resnet18_body(in_channels: int) -> tuple[nn.Module, int]:
    """torchvision's ResNet-18 (random init, no download) without its last layer."""
    from torchvision.models import resnet18
    net = resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    return net, 512


ARCHITECTURES = {
    "small_cnn": lambda c, **kw: small_cnn_body(c, **kw),
    "preact_resnet18": lambda c, **kw: preact_resnet18_body(c),
    "wide_resnet": lambda c, **kw: wide_resnet_body(c, **kw),
    "resnet18": lambda c, **kw: resnet18_body(c),
}


def build_model(arch: str, num_classes: int, in_channels: int = 3, mean=(0.5,), std=(0.5,),
                **kwargs) -> Classifier:
    """Build a `Classifier` by architecture name (see ARCHITECTURES).

    `mean`/`std` are per-channel statistics in [0,1] units (Data.mean / Data.std);
    extra kwargs go to the body (small_cnn: width; wide_resnet: depth, widen).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    body, dim = ARCHITECTURES[arch](in_channels, **kwargs)
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) == 1 and in_channels > 1:
        mean, std = mean * in_channels, std * in_channels
    model = Classifier(body, dim, num_classes, mean, std)
    model.config = dict(arch=arch, num_classes=num_classes, in_channels=in_channels,
                        mean=mean, std=std, kwargs=kwargs)  # enough to rebuild it
    return model


def model_for(data, arch: str = "small_cnn", **kwargs) -> Classifier:
    """Build a model sized for a `data.Data` bundle (channels, classes, mean/std)."""
    return build_model(arch, data.num_classes, data.shape[0], data.mean, data.std, **kwargs)
