"""Backbones by name and the embedding head, on tiny random inputs (no pretrained weights)."""

from __future__ import annotations

import pytest
import torch

from flukeid.errors import ConfigError
from flukeid.models.backbones import create_backbone
from flukeid.models.head import EmbeddingModel, GeM


def test_gem_is_average_pooling_at_p1_and_max_like_at_large_p() -> None:
    x = torch.rand(2, 3, 4, 5) + 0.1
    average = GeM(p=1.0)(x)
    torch.testing.assert_close(average, x.mean(dim=(2, 3)))
    near_max = GeM(p=50.0)(x)
    assert (near_max <= x.amax(dim=(2, 3)) + 1e-4).all() and (near_max > average).all()


@pytest.mark.parametrize(("dim", "width"), [(16, 16), (None, 1280)])
def test_embedding_model_gives_unit_vectors_of_its_dim(dim: int | None, width: int) -> None:
    torch.manual_seed(0)
    model = EmbeddingModel(create_backbone("efficientnet_lite0", pretrained=False), dim=dim).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, width) and model.dim == width
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_backbone_spec_names_its_input() -> None:
    spec = create_backbone("mobilenetv2", pretrained=False).spec
    assert spec.num_features == 1280 and len(spec.mean) == len(spec.std) == 3 and min(spec.input_size) > 0


def test_unknown_backbone_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'efficientnet_litee0' \(did you mean 'efficientnet_lite0'"):
        create_backbone("efficientnet_litee0", pretrained=False)
