"""CLI commands of the curator service: catalog init, users add, serve."""

from __future__ import annotations

from pathlib import Path

import typer

from flukeid.progress import stdout

catalog_app = typer.Typer(help="Curated catalogues served by `flukeid serve`.")
users_app = typer.Typer(help="Users of a curated catalogue and their tokens.")


@catalog_app.command("init")
def catalog_init(
    folder: Path = typer.Argument(..., help="Catalogue folder to create."),
    model: Path = typer.Option(..., help="Model directory (from flukeid train or flukeid frozen)."),
    gallery: Path = typer.Option(..., help="Gallery folder built with that model (flukeid gallery build)."),
    database: str | None = typer.Option(None, help="SQLAlchemy URL (default: FOLDER/catalog.sqlite)."),
) -> None:
    """Create a curated catalogue from a model and its gallery; the gallery's photos are imported."""
    from flukeid.serve.catalog import init_catalog

    settings = init_catalog(folder, model, gallery, database)
    stdout.print(f"catalogue {folder}: model {settings.model}, gallery {settings.gallery}")
    stdout.print(f"next: flukeid users add {folder} NAME --role curator, then flukeid serve {folder}")


@users_app.command("add")
def users_add(
    folder: Path = typer.Argument(..., help="Catalogue folder."),
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option("curator", help="viewer (read), curator (decide, upload) or admin (also users)."),
) -> None:
    """Add a user and print its token (shown only this once)."""
    from flukeid.serve.auth import add_user
    from flukeid.serve.catalog import CatalogSettings
    from flukeid.serve.db import sessions

    make_session = sessions(CatalogSettings.load(folder).database)
    with make_session.begin() as session:
        token = add_user(session, name, role)
    stdout.print(f"user {name} ({role}); token (keep it, it is not shown again):")
    print(token)


def serve(
    folder: Path = typer.Argument(..., help="Catalogue folder (flukeid catalog init)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 127.0.0.1 keeps it on this machine."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Start the curator web service: review page at http://HOST:PORT/, API docs at /docs."""
    import uvicorn

    from flukeid.serve.app import create_app

    app = create_app(folder)
    stdout.print(f"flukeid curator on http://{host}:{port}/ (API docs /docs); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, log_level="info")
