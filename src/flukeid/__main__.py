"""`python -m flukeid` runs the CLI."""

from flukeid.cli import main

main()
