"""The ``flukeid`` command line: each command parses, calls the library, prints.

One module per pipeline stage (data, train, detect, gallery, identify, serve, and the demo over all of them);
this one assembles them into one app, in the order ``flukeid --help`` lists them, and runs it (`common.run`)."""

from __future__ import annotations

import sys

import typer

from flukeid.cli import data, demo, detect, export, gallery, identify, serve, train
from flukeid.cli.common import CliState, run
from flukeid.progress import setup_logging

app = typer.Typer(
    help="Identify individual whales (and other marked animals) from photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    setup_logging(verbose)
    ctx.ensure_object(CliState).debug = debug


COMMANDS = {
    "synth": data.synth,
    "check": data.check,
    "stats": data.stats,
    "split": data.split,
    "convert": data.convert,
    "score": data.score,
    "train": train.train_command,
    "distill": train.distill_command,
    "export": export.export_command,
    "embed": identify.embed_command,
    "demo": demo.demo,
    "enroll": gallery.enroll,
    "remove": gallery.remove,
    "identify": identify.identify_command,
    "evaluate": identify.evaluate_command,
    "verify": identify.verify,
    "cluster": identify.cluster,
    "frozen": identify.frozen,
    "tune": identify.tune,
    "crop": detect.crop,
    "serve": serve.serve,
}
GROUPS = {
    "gallery": gallery.gallery_app,
    "detect": detect.detect_app,
    "catalog": serve.catalog_app,
    "users": serve.users_app,
}
for name, command in COMMANDS.items():
    app.command(name)(command)
for name, group in GROUPS.items():
    app.add_typer(group, name=name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: any error becomes one red ``error:`` line and a non-zero exit code (a traceback with --debug);
    Ctrl-C exits with 130. Called without ``argv`` (the console script, ``python -m flukeid``) it exits."""
    code = run(app, sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.exit(code)
    return code
