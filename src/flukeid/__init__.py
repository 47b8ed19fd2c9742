"""flukeid: identify individual animals (humpback whale flukes and others) from photos.

The objects a script or notebook needs are importable from here; each is loaded on first use (PEP 562), so
``import flukeid`` stays light (no torch, no other part of flukeid):

    import flukeid

    catalogue = flukeid.load_catalogue("flukes/")
    model = flukeid.frozen_model("efficientnet_lite0", "model/")
    flukeid.tune_model(model, catalogue.labels)  # calibrated probabilities and the new_whale threshold
    gallery = flukeid.build_gallery(model, catalogue.labels, "gallery/").gallery
    predictions = flukeid.Identifier.load(model, gallery).identify(list(catalogue.test["path"]))

Every part of flukeid imports these names from the modules that define them, never from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

NEW_WHALE = "new_whale"
"""Label of an individual that is not in the catalogue, as in the Kaggle benchmark."""

_EXPORTS: dict[str, str] = {
    "Catalogue": "flukeid.data.catalogue",
    "load_catalogue": "flukeid.data.catalogue",
    "Artifact": "flukeid.models.artifact",
    "ModelConfig": "flukeid.models.artifact",
    "frozen_model": "flukeid.models.artifact",
    "load_model": "flukeid.models.artifact",
    "Gallery": "flukeid.gallery",
    "build_gallery": "flukeid.gallery.build",
    "IdentifySettings": "flukeid.identify.settings",
    "Identifier": "flukeid.identify.identifier",
    "Prediction": "flukeid.identify.identifier",
    "tune_model": "flukeid.identify.tune",
    "map_at_k": "flukeid.metrics",
    "open_set_scores": "flukeid.metrics",
}
"""The public API: name -> the module that defines it (loaded by `__getattr__` on first use)."""

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from flukeid.data.catalogue import Catalogue, load_catalogue
    from flukeid.gallery import Gallery
    from flukeid.gallery.build import build_gallery
    from flukeid.identify.identifier import Identifier, Prediction
    from flukeid.identify.settings import IdentifySettings
    from flukeid.identify.tune import tune_model
    from flukeid.metrics import map_at_k, open_set_scores
    from flukeid.models.artifact import Artifact, ModelConfig, frozen_model, load_model

__all__ = [
    "NEW_WHALE",
    "Artifact",
    "Catalogue",
    "Gallery",
    "Identifier",
    "IdentifySettings",
    "ModelConfig",
    "Prediction",
    "__version__",
    "build_gallery",
    "frozen_model",
    "load_catalogue",
    "load_model",
    "map_at_k",
    "open_set_scores",
    "tune_model",
]


def __getattr__(name: str) -> Any:
    """Load a name of the public API from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flukeid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later uses find it without calling here again
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
