"""`python -m mepbench` runs the CLI."""

from mepbench.cli import main

main()
