"""The curator service's database: individuals, photos, encounters, review decisions (with their audit trail)
and users, through SQLAlchemy. SQLite file by default, PostgreSQL by URL; the schema is made by Alembic.

Catalogue photos mirror the gallery (``gallery_id``); uploaded photos wait in an encounter until a curator
decides. Every decision is a row in ``decisions`` with who, when, what and the encounter's previous state, so a
decision can be undone and the trail read back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, Integer, LargeBinary, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).parent / "migrations"


class Role(StrEnum):
    """A user's role, in increasing power: each may do what the ones before it may."""

    VIEWER = "viewer"
    CURATOR = "curator"
    ADMIN = "admin"


class EncounterStatus(StrEnum):
    PENDING = "pending"  # waits for a decision
    MATCHED = "matched"
    NEW = "new"  # a new individual
    REJECTED = "rejected"


class PhotoStatus(StrEnum):
    CATALOGUE = "catalogue"  # in the gallery
    PENDING = "pending"  # uploaded, its encounter waits for a decision
    REJECTED = "rejected"


class Action(StrEnum):
    """What a decision did: a curator's match, new or reject, or the undoing of an earlier decision."""

    MATCH = "match"
    NEW = "new"
    REJECT = "reject"
    UNDO = "undo"


E = TypeVar("E", bound=StrEnum)


class Named(TypeDecorator[E]):
    """A StrEnum column stored as its value in a VARCHAR(16) and read back as the enum. Any text binds (a
    query for an unknown status finds nothing); only the enum's values are ever stored."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__(16)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[Role] = mapped_column(Named(Role))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Individual(Base):
    __tablename__ = "individuals"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str | None] = mapped_column(String(64))  # None: imported with the gallery


class Encounter(Base):
    """Photos taken together, matched as one query. status: pending, matched, new or rejected; ``version``
    moves with every decision, so a decision made on a stale view is refused (optimistic locking)."""

    __tablename__ = "encounters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[EncounterStatus] = mapped_column(Named(EncounterStatus), default=EncounterStatus.PENDING, index=True)
    individual_id: Mapped[str | None] = mapped_column(ForeignKey("individuals.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str] = mapped_column(String(64))


class Photo(Base):
    """A catalogue photo (status "catalogue", in the gallery as ``gallery_id``), an uploaded photo waiting for a
    decision ("pending") or a rejected one ("rejected"). ``image`` is the stored file name, generated on upload;
    ``path`` is relative to the catalogue folder for uploads ("uploads/NAME"), absolute for imported photos."""

    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image: Mapped[str] = mapped_column(String(255), unique=True)
    original_name: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[PhotoStatus] = mapped_column(Named(PhotoStatus), index=True)
    individual_id: Mapped[str | None] = mapped_column(ForeignKey("individuals.id"), index=True)
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), index=True)
    gallery_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    sha1: Mapped[str | None] = mapped_column(String(40))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 embedding of an uploaded photo
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Decision(Base):
    """One curator decision on an encounter (match, new, reject) or the undoing of one (undo)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    user: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    action: Mapped[Action] = mapped_column(Named(Action))
    individual_id: Mapped[str | None] = mapped_column(String(128))
    previous: Mapped[dict[str, Any]] = mapped_column(JSON)  # the encounter's status, individual and version before
    undone_by: Mapped[int | None] = mapped_column(Integer)  # id of the undo decision, once undone


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout (several threads write)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with Alembic (creating it if new)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, revision)


def sessions(url: str) -> sessionmaker:
    """Migrate the database at ``url`` and return a session factory for it."""
    migrate(url)
    return sessionmaker(engine_for(url), expire_on_commit=False)
