"""The `oppo-train` command. The trainer itself is tracked in issue 8; until then the command says so."""

import sys


def main() -> None:
    """Explain that training is not available in this release and exit non-zero."""
    sys.stderr.write("oppo-train: the OPPO trainer is not implemented in this release (tracked in issue 8).\n")
    raise SystemExit(2)
