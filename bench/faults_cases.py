"""The command-line cases of bench/faults.py and the tiny setup they run against.

Placeholders in a case's arguments: {cat} {model} {gallery} {queries} {answers} {yaml} (the shared, protected
inputs), {w} (the case's own folder, prepared by ``prepare``) and {out} (where the command may write).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faults_inputs as bad

TINY_YAML = (
    "model: {backbone: timm/test_efficientnet, pretrained: false, embedding_dim: 16, image_size: [48, 96]}\n"
    "epochs: 1\nbatch_size: 8\nm_per_class: 2\nnegatives_per_batch: 2\nnum_workers: 0\n"
)


@dataclass(frozen=True)
class Setup:
    """The shared inputs, built once under ``root/fixed`` (protected in every case)."""

    root: Path
    usable: int  # usable labelled photos of the catalogue
    gallery_photos: int
    known: tuple[str, ...]  # individual IDs of the catalogue

    @property
    def fixed(self) -> Path:
        return self.root / "fixed"

    def places(self, work: Path) -> dict[str, str]:
        names = ("cat", "model", "gallery", "queries", "answers", "yaml")
        paths = {name: self.fixed / name for name in names}
        paths["answers"] = self.fixed / "cat" / "answers.csv"
        paths["queries"] = self.fixed / "cat" / "test"
        paths["yaml"] = self.fixed / "tiny.yaml"
        return {**{k: str(v) for k, v in paths.items()}, "w": str(work), "out": str(work / "out")}

    @classmethod
    def build(cls, root: Path) -> Setup:
        """A synthetic catalogue (8 individuals, ~20 photos at 48x64), a tiny untrained model (SIFT matcher,
        shortlist 3) and its gallery."""
        from flukeid.cli import main
        from flukeid.gallery import Gallery
        from flukeid.identify.identifier import save_settings
        from flukeid.identify.settings import IdentifySettings
        from flukeid.matchers import MatcherSettings
        from flukeid.models.artifact import ModelConfig, build_model, save_model
        from flukeid.synth import SynthConfig, generate

        fixed = root / "fixed"
        generate(fixed / "cat", SynthConfig(individuals=8, photos=(2, 3), size=(48, 64), seed=0, new_share=0.25))
        tiny = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))
        save_model(fixed / "model", build_model(tiny).eval(), tiny, labels=[], threshold=0.9)
        save_settings(fixed / "model", IdentifySettings(matchers=(MatcherSettings("sift"),), shortlist=3))
        (fixed / "tiny.yaml").write_text(TINY_YAML)
        code = main(["gallery", "build", str(fixed / "model"), str(fixed / "cat"), "--out", str(fixed / "gallery")])
        assert code == 0, "the setup's gallery did not build"
        rows = bad.labelled_rows(fixed / "cat")
        known = tuple(sorted({ident for _, ident in rows if ident != "new_whale"}))
        return cls(root, len(rows), len(Gallery.open(fixed / "gallery")), known)


Prepare = Callable[[Setup, Path], None]
Check = Callable[[str], str | None]


@dataclass(frozen=True)
class Case:
    """A command line and what it should do: ``expect_ok`` True (exit 0 with ``check`` passing), False (refused,
    the message naming ``names``) or None (either is right)."""

    name: str
    args: tuple[str, ...]
    expect_ok: bool | None
    names: tuple[str, ...] = ()
    prepare: Prepare | None = None
    check: Check | None = None
    may_change: tuple[str, ...] = ()  # folders under the case's own folder the command may write
    report_on_stdout: bool = False  # `check` reports its problems on stdout
    timeout_s: int = 120


def contains(*parts: str) -> Check:
    def check(stdout: str) -> str | None:
        missing = [p for p in parts if p not in stdout]
        return f"output lacks {missing}: {' '.join(stdout.split())[:120]}" if missing else None

    return check


def _damaged_catalogue(fault: bad.PhotoFault) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        cat = bad.copy_catalogue(setup.fixed / "cat", work / "cat")
        fault(_known_photo(cat))

    return prepare


def _known_photo(cat: Path) -> Path:
    image = next(image for image, ident in bad.labelled_rows(cat) if ident != "new_whale")
    return cat / "train" / image


def _damaged_queries(fault: bad.PhotoFault) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        shutil.copytree(setup.fixed / "cat" / "test", work / "q")
        fault(sorted((work / "q").iterdir())[0])

    return prepare


def _damaged_enrolment(fault: bad.PhotoFault) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        shutil.copytree(setup.fixed / "gallery", work / "gallery")
        photos = sorted((setup.fixed / "cat" / "test").iterdir())[:2]
        for i, photo in enumerate(photos):
            shutil.copy(photo, work / f"p{i}.jpg")
        fault(work / "p0.jpg")

    return prepare


def photo_cases(setup: Setup) -> list[Case]:
    """Each damaged or unusual photo in a catalogue (check, gallery build, evaluate), among queries (identify)
    and among photos to enrol."""
    cases = []
    queries = len(list((setup.fixed / "cat" / "test").iterdir()))
    for name, (fault, usable) in bad.PHOTO_FAULTS.items():
        lost = 0 if usable else 1
        cases += [
            Case(
                f"photo {name}: check",
                ("check", "{w}/cat"),
                True,
                prepare=_damaged_catalogue(fault),
                check=contains(f"{setup.usable - lost} usable labelled photos"),
            ),
            Case(
                f"photo {name}: gallery build",
                ("gallery", "build", "{model}", "{w}/cat", "--out", "{out}/g"),
                True,
                prepare=_damaged_catalogue(fault),
                check=contains(f"{setup.gallery_photos - lost} photos"),
            ),
            Case(
                f"photo {name}: identify",
                ("identify", "{model}", "{gallery}", "{w}/q", "--out", "{out}/id", "--no-report"),
                True,
                prepare=_damaged_queries(fault),
                check=contains(f"{queries} photos identified ({lost} unreadable)"),
            ),
            Case(
                f"photo {name}: enroll",
                ("enroll", "{w}/gallery", "{w}/p0.jpg", "{w}/p1.jpg", "--id", "w_fault"),
                usable,
                names=("p0.jpg",),
                prepare=_damaged_enrolment(fault),
                check=contains("enrolled 2 photo(s)"),
                may_change=("gallery",) if usable else (),
            ),
        ]
        if name in ("truncated", "zero-byte", "bomb-header", "cmyk"):
            cases.append(
                Case(
                    f"photo {name}: evaluate",
                    ("evaluate", "{model}", "{w}/cat", "--split", "closed", "--out", "{out}/ev"),
                    True,
                    prepare=_damaged_catalogue(fault),
                    check=contains("MAP@5"),
                )
            )
    return cases


def _csv_catalogue(data: bytes) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        bad.rewrite_csv(bad.copy_catalogue(setup.fixed / "cat", work / "cat"), data)

    return prepare


def csv_cases(setup: Setup) -> list[Case]:
    """train.csv variants under `check` (valid ones must give the right number of usable photos)."""
    rows = bad.labelled_rows(setup.fixed / "cat")
    cases = []
    for name, (data, usable) in bad.csv_variants(rows).items():
        cases.append(
            Case(
                f"train.csv {name}: check",
                ("check", "{w}/cat"),
                usable is not None,
                names=("train.csv",),
                prepare=_csv_catalogue(data),
                check=contains(f"{usable} usable labelled photos") if usable is not None else None,
                report_on_stdout=True,
            )
        )
    bom, _ = bad.csv_variants(rows)["bom"]
    unicode, _ = bad.csv_variants(rows)["unicode-ids"]
    quoted, _ = bad.csv_variants(rows)["quoted-comma-id"]
    for name, data in (("bom", bom), ("unicode-ids", unicode), ("quoted-comma-id", quoted)):
        cases.append(
            Case(
                f"train.csv {name}: gallery build",
                ("gallery", "build", "{model}", "{w}/cat", "--out", "{out}/g"),
                True,
                prepare=_csv_catalogue(data),
                check=contains(f"{setup.gallery_photos} photos"),
            )
        )
    return cases


def _submission(text: str) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        (work / "submission.csv").write_text(text, encoding="utf-8", newline="")

    return prepare


def score_cases(setup: Setup) -> list[Case]:
    answers = bad.labelled_rows_of(setup.fixed / "cat" / "answers.csv")
    cases = []
    for name, (text, ok) in bad.submission_variants(answers, list(setup.known)).items():
        cases.append(
            Case(
                f"submission {name}: score",
                ("score", "{w}/submission.csv", "{answers}"),
                ok,
                names=("submission.csv",),
                prepare=_submission(text),
                check=contains("MAP@5"),
            )
        )
    return cases


def _damaged_model(kind: str) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        shutil.copytree(setup.fixed / "model", work / "model")
        bad.damage_model(work / "model", kind)

    return prepare


MODEL_FILES = {
    "no-weights": "model",
    "empty-weights": "model.safetensors",
    "truncated-weights": "model.safetensors",
    "garbage-weights": "model.safetensors",
    "no-model-yaml": "model.yaml",
    "bad-model-yaml": "model.yaml",
    "wrong-backbone": "model",
    "no-labels-json": "labels.json",
    "bad-labels-json": "labels.json",
    "bad-threshold-json": "threshold.json",
    "bad-identify-yaml": "identify.yaml",
}


def model_cases(setup: Setup) -> list[Case]:
    cases = []
    for kind, named in MODEL_FILES.items():
        cases.append(
            Case(
                f"model {kind}: identify",
                ("identify", "{w}/model", "{gallery}", "{queries}", "--out", "{out}/id", "--no-report"),
                kind == "no-labels-json",  # optional: only models with a classifier head use it
                names=(named,),
                prepare=_damaged_model(kind),
                check=contains("identified"),
            )
        )
    for kind in ("truncated-weights", "bad-labels-json", "wrong-backbone"):
        cases.append(
            Case(
                f"model {kind}: gallery build",
                ("gallery", "build", "{w}/model", "{cat}", "--out", "{out}/g"),
                False,
                names=(MODEL_FILES[kind],),
                prepare=_damaged_model(kind),
            )
        )
    return cases


def _damaged_gallery(kind: str) -> Prepare:
    def prepare(setup: Setup, work: Path) -> None:
        shutil.copytree(setup.fixed / "gallery", work / "gallery")
        bad.damage_gallery(work / "gallery", kind)

    return prepare


def gallery_cases(setup: Setup) -> list[Case]:
    """Broken gallery folders: the database is refused naming it; a lost index is rebuilt (handled)."""
    identify = ("identify", "{model}", "{w}/gallery", "{queries}", "--out", "{out}/id", "--no-report")
    n = len(list((setup.fixed / "cat" / "test").iterdir()))
    cases = []
    for kind in ("garbage-sqlite", "empty-sqlite", "truncated-sqlite"):
        for command in (identify, ("gallery", "info", "{w}/gallery"), ("remove", "{w}/gallery", "--id", "x")):
            cases.append(
                Case(
                    f"gallery {kind}: {command[0]}",
                    command,
                    False,
                    names=("gallery",),
                    prepare=_damaged_gallery(kind),
                )
            )
    for kind in ("no-index", "garbage-index"):
        cases.append(
            Case(
                f"gallery {kind}: identify",
                identify,
                True,
                prepare=_damaged_gallery(kind),
                check=contains(f"{n} photos identified (0 unreadable)"),
                may_change=("gallery/index.faiss", "gallery/index.version"),
            )
        )
    cases.append(
        Case(
            "gallery no-model-link: enroll",
            ("enroll", "{w}/gallery", "{queries}", "--id", "w_x"),
            False,
            names=("--model",),
            prepare=_damaged_gallery("no-model-link"),
        )
    )
    return cases


def _copied_gallery(setup: Setup, work: Path) -> None:
    shutil.copytree(setup.fixed / "gallery", work / "gallery")


TRAIN = ("train", "{cat}", "--config", "{yaml}", "--out", "{out}/run")


def option_cases(setup: Setup) -> list[Case]:
    """--set values and options with unknown keys, wrong types, NaN and inf; odd IDs and names."""
    sets = {
        "epoch=2": "epoch",
        "epochs=1.5": "epochs",
        "epochs=true": "epochs",
        "epochs=.inf": "epochs",
        "seed=.nan": "seed",
        "model.dropout=.nan": "model.dropout",
        "optim.weight_decay=.inf": "optim.weight_decay",
        "optim.warmup_epochs=.nan": "optim.warmup_epochs",
        "val_unknown_share=.nan": "val_unknown_share",
        "augment.rotate=.nan": "augment.rotate",
        "augment.preset=strongest": "augment.preset",
        "loss.name=arcfaec": "arcface",
        "model=3": "model",
        "model.image_size=64": "model.image_size",
        "model.backbone=no_such_net": "no_such_net",
        "precision=fp16": "precision",
        "accelerator=tpu": "tpu",
        "batches_per_epoch=.inf": "batches_per_epoch",
    }
    cases = [Case(f"train --set {s}", (*TRAIN, "--set", s), False, names=(n,)) for s, n in sets.items()]
    cases += [
        Case("train --devices 0", (*TRAIN, "--devices", "0"), False, names=("devices",)),
        Case("train --strategy bogus", (*TRAIN, "--strategy", "bogus"), False, names=("bogus",)),
        Case("frozen --size -5", ("frozen", "{out}/m", "--size", "-5"), False, names=("size",)),
        Case("frozen --backbone nope", ("frozen", "{out}/m", "--backbone", "nope"), False, names=("nope",)),
        Case("frozen --matchers nope", ("frozen", "{out}/m", "--matchers", "nope"), False, names=("nope",)),
        Case("frozen --shortlist 0", ("frozen", "{out}/m", "--shortlist", "0"), False, names=("shortlist",)),
        Case(
            "tune --matchers sift,sift", ("tune", "{model}", "{cat}", "--matchers", "sift,sift"), False, ("matchers",)
        ),
    ]
    identify = ("identify", "{model}", "{gallery}", "{queries}", "--out", "{out}/id", "--no-report")
    cases.append(Case("identify --threshold nan", (*identify, "--threshold", "nan"), False, ("threshold",)))
    for value in ("inf", "-inf"):  # always / never new_whale first: extreme but meaningful
        cases.append(
            Case(f"identify --threshold {value}", (*identify, "--threshold", value), True, check=contains("identified"))
        )
    for ident, named in (("../x", None), ("", "ID"), ("a b", "whitespace"), ("x" * 200, "characters")):
        enroll = ("enroll", "{w}/gallery", "{queries}", "--id", ident)
        cases.append(
            Case(
                f"enroll --id {ident[:12]!r}",
                enroll,
                None if named is None else False,
                names=(named,) if named else (),
                prepare=_copied_gallery,
                check=contains("enrolled"),
                may_change=("gallery",) if named is None else (),
            )
        )
    cases += [
        Case(
            "enroll an enrolled photo",
            ("enroll", "{w}/gallery", "{cat}/train", "--id", "w_dup"),
            False,
            names=("enrolled",),
            prepare=_copied_gallery,
        ),
        Case(
            "remove unknown --id",
            ("remove", "{w}/gallery", "--id", "nobody"),
            None,
            names=("nobody",),
            prepare=_copied_gallery,
            check=contains("removed 0"),
        ),
        Case(
            "remove unknown --image",
            ("remove", "{w}/gallery", "--image", "../x.jpg"),
            None,
            names=("x.jpg",),
            prepare=_copied_gallery,
            check=contains("removed 0"),
        ),
        Case(
            "identify empty folder",
            ("identify", "{model}", "{gallery}", "{w}", "--out", "{out}/id"),
            False,
            names=("no images",),
        ),
        Case(
            "identify a CSV as photo",
            ("identify", "{model}", "{gallery}", "{answers}", "--out", "{out}/id", "--no-report"),
            True,
            check=contains("(1 unreadable)"),
        ),
        Case("verify missing photo", ("verify", "{model}", "{w}/nope.jpg", "{answers}"), False, names=("nope.jpg",)),
        Case(
            "cluster one photo",
            ("cluster", "{model}", "{cat}/test", "--out", "{out}/c.csv"),
            None,
            check=contains("clusters"),
        ),
    ]
    return cases


def cli_cases(setup: Setup) -> list[Case]:
    return [
        *photo_cases(setup),
        *csv_cases(setup),
        *score_cases(setup),
        *model_cases(setup),
        *gallery_cases(setup),
        *option_cases(setup),
    ]
