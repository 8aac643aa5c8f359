"""`python -m twofold` runs the CLI."""

from twofold.cli import main

main()
