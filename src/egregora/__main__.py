"""``python -m egregora`` runs the command line."""

from egregora.cli.app import main

main()
