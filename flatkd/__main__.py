"""``python -m flatkd`` runs the CLI."""

from flatkd.cli import main

main()
