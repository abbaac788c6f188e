"""``python -m flatkd`` runs the CLI."""

from flatkd.cli import main

if __name__ == "__main__":
    main()
