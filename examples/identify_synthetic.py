"""Identify synthetic humpback flukes with flukeid's Python API: catalogue -> model -> gallery -> top-5 -> MAP@5.

    python examples/identify_synthetic.py --out /tmp/flukes      # frozen EfficientNet-Lite0 + SIFT, about a minute
    python examples/identify_synthetic.py --out /tmp/flukes --tiny --individuals 8   # seconds: proves the path only

Everything runs offline on the CPU: the catalogue is drawn by `flukeid.synth`, the EfficientNet-Lite0 weights come
with flukeid, and ``--tiny`` uses an untrained timm test network (no weights at all).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import flukeid
from flukeid.synth import SynthConfig, generate


def tiny_model(out: Path) -> flukeid.Artifact:
    """An untrained tiny network: seconds on a CPU, answers no better than chance."""
    from flukeid.models.artifact import build_model, save_model

    config = flukeid.ModelConfig(
        backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96)
    )
    save_model(out, build_model(config).eval(), config, labels=[], threshold=None)
    return flukeid.load_model(out)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="A new folder for the catalogue, model and gallery.")
    parser.add_argument("--individuals", type=int, default=30, help="Synthetic individuals (default 30).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="An untrained tiny network instead of EfficientNet-Lite0.")
    parser.add_argument("--no-local", action="store_true", help="The embedding alone: no SIFT matching (faster).")
    parser.add_argument("--show", type=int, default=5, help="Queries whose top-5 is printed.")
    args = parser.parse_args(argv)

    size = (96, 160) if args.tiny else (192, 320)
    generate(args.out / "flukes", SynthConfig(individuals=args.individuals, photos=(2, 5), size=size, seed=args.seed))
    catalogue = flukeid.load_catalogue(args.out / "flukes")

    if args.tiny:
        model = tiny_model(args.out / "model")
    else:
        model = flukeid.frozen_model("efficientnet_lite0", args.out / "model", (224, 224))
    settings = flukeid.IdentifySettings(matchers=()) if args.no_local else None
    flukeid.tune_model(model, catalogue.labels, seed=args.seed, settings=settings)  # probabilities + threshold

    gallery = flukeid.build_gallery(model, catalogue.labels, args.out / "gallery").gallery
    identifier = flukeid.Identifier.load(model, gallery)
    answers = pd.read_csv(args.out / "flukes" / "answers.csv")  # Image, Id: the truth of each test photo
    predictions = identifier.identify([catalogue.root / "test" / image for image in answers["Image"]])

    print(f"{len(gallery)} catalogue photos of {len(gallery.individuals())} individuals; {len(predictions)} queries")
    for p, truth in list(zip(predictions, answers["Id"]))[: args.show]:
        chances = p.probabilities or [float("nan")] * len(p.ranking.ids)
        top5 = "  ".join(f"{name} {chance:.2f}" for name, chance in zip(p.ranking.ids, chances))
        print(f"{p.image} (truth {truth}): {top5}")
    score = flukeid.map_at_k([p.ranking.ids for p in predictions], list(answers["Id"]))
    print(f"MAP@5 {score:.3f}")
    return score


if __name__ == "__main__":
    main()
