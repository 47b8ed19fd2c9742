"""Start-up reconciliation of the gallery with the service database, which is the truth.

A decision writes two stores: its photos join the gallery just before the database commits the decision, and
an undo commits the database before the photos leave the gallery. A crash between the two writes (SIGKILL, a
power cut) therefore leaves the gallery holding photos that no committed decision put there; a gallery restored
from an older copy, or edited by hand, may also lack committed catalogue photos. ``reconcile_gallery`` makes
the gallery agree with the database again before the service starts, and logs what it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import false, select, text, update
from sqlalchemy.orm import Session

from flukeid import NEW_WHALE
from flukeid.gallery import Gallery
from flukeid.gallery import Photo as GalleryPhoto
from flukeid.serve.catalog import photo_file
from flukeid.serve.db import Encounter, Photo, PhotoStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    """What reconciliation changed, by image name."""

    removed: list[str]  # in the gallery without a committed decision: removed from the gallery
    relinked: list[str]  # catalogue photos found in the gallery under another id: the database follows it
    enrolled: list[str]  # catalogue photos missing from the gallery: enrolled again from their stored vector
    lost: list[str]  # catalogue photos missing from the gallery with no stored vector: not searchable


def _some(names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(repr(name) for name in list(names)[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def hold_decisions(session: Session) -> None:
    """Make decisions and undos of other service processes on this database wait until ``session``'s
    transaction ends, and wait for those in flight to commit first, so that reconciliation never takes a
    decision in progress for a crash's leftover. SQLite: an UPDATE that changes nothing takes the database's
    write lock; PostgreSQL: a table lock that every decision's UPDATE of its encounter waits for."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE encounters IN SHARE ROW EXCLUSIVE MODE"))
    else:
        session.execute(update(Encounter).where(false()).values(version=Encounter.version))


def _stale_and_relinked(
    entries: dict[int, GalleryPhoto], by_image: dict[str, Any], unlinked: dict[str, Any]
) -> tuple[list[str], dict[int, int]]:
    """Gallery images to remove, and {photo id: gallery id} of catalogue photos found under another id."""
    stale: list[str] = []
    relink: dict[int, int] = {}
    for entry in entries.values():
        row = by_image.get(entry.image)
        if row is None or (row.status == PhotoStatus.CATALOGUE and row.gallery_id == entry.id):
            continue  # enrolled outside the service (imported next), or just as the database says
        owner = unlinked.get(entry.image)
        if owner is not None and entry.individual == (owner.individual_id or NEW_WHALE):
            relink[owner.id] = entry.id
        else:
            stale.append(entry.image)
    return stale, relink


def _enroll_again(session: Session, gallery: Gallery, folder: Path, rows: list[Any]) -> tuple[list[str], list[str]]:
    """Enrol catalogue photos missing from the gallery from their stored vectors; returns (enrolled, lost)."""
    vectors = dict(session.execute(select(Photo.id, Photo.vector).where(Photo.id.in_([r.id for r in rows]))).all())
    found = [r for r in rows if vectors.get(r.id) is not None]
    lost = [r.image for r in rows if vectors.get(r.id) is None]
    if found:
        ids = gallery.add(
            [r.image for r in found],
            [r.individual_id or NEW_WHALE for r in found],
            np.stack([np.frombuffer(vectors[r.id], dtype="<f4") for r in found]),
            paths=[str(photo_file(folder, r.path)) for r in found],
            sha1s=[r.sha1 for r in found],
        )
        session.execute(update(Photo), [{"id": r.id, "gallery_id": i} for r, i in zip(found, ids)])
    return [r.image for r in found], lost


def reconcile_gallery(session: Session, gallery: Gallery, folder: Path) -> Reconciled:
    """Make ``gallery`` hold exactly the database's catalogue photos, within ``session``'s transaction:

    * a gallery photo whose image is a database photo that is not a catalogue photo with that gallery id (a
      decision that never committed, an undo committed before its gallery removal) leaves the gallery;
    * a catalogue photo the gallery lacks is enrolled again from its stored vector (uploads have one), or
      relinked when the gallery holds its image, for its individual, under another id; one with no vector
      (imported from the gallery) is logged as lost from search.

    Gallery photos unknown to the database (``flukeid enroll``) are left for ``import_gallery``."""
    entries = {entry.id: entry for entry in gallery.photos()}
    columns = (Photo.id, Photo.image, Photo.status, Photo.gallery_id, Photo.individual_id, Photo.path, Photo.sha1)
    rows = session.execute(select(*columns)).all()
    by_image = {r.image: r for r in rows}
    unlinked = {
        r.image: r
        for r in rows
        if r.status == PhotoStatus.CATALOGUE and getattr(entries.get(r.gallery_id), "image", None) != r.image
    }
    stale, relink = _stale_and_relinked(entries, by_image, unlinked)
    if stale:
        gallery.remove(images=stale)
    if unlinked:  # drop broken links first: gallery ids are unique in the database
        session.execute(update(Photo), [{"id": r.id, "gallery_id": None} for r in unlinked.values()])
    if relink:
        session.execute(update(Photo), [{"id": p, "gallery_id": g} for p, g in relink.items()])
    missing = [r for r in unlinked.values() if r.id not in relink]
    enrolled, lost = _enroll_again(session, gallery, folder, missing) if missing else ([], [])
    result = Reconciled(stale, [r.image for r in unlinked.values() if r.id in relink], enrolled, lost)
    _log(gallery, result)
    return result


def _log(gallery: Gallery, result: Reconciled) -> None:
    if result.removed:
        log.warning(
            "gallery %s: removed %d photo(s) that no committed decision put there (the service stopped between "
            "its gallery and database writes): %s",
            gallery.path,
            len(result.removed),
            _some(result.removed),
        )
    if result.relinked:
        log.warning(
            "gallery %s: %d catalogue photo(s) were in the gallery under another id; linked: %s",
            gallery.path,
            len(result.relinked),
            _some(result.relinked),
        )
    if result.enrolled:
        log.warning(
            "gallery %s: %d catalogue photo(s) were missing from it; enrolled again from their stored vectors: %s",
            gallery.path,
            len(result.enrolled),
            _some(result.enrolled),
        )
    if result.lost:
        log.error(
            "gallery %s: %d catalogue photo(s) are missing from it and have no stored vector, so proposals cannot "
            "show them until they are enrolled again (`flukeid enroll %s PHOTO --id INDIVIDUAL`; the service links "
            "them at its next start): %s",
            gallery.path,
            len(result.lost),
            gallery.path,
            _some(result.lost),
        )
