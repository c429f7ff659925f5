"""`python -m mepbench` runs the CLI (guarded: vLLM's engine processes re-import the main module)."""

from mepbench.cli import main

if __name__ == "__main__":
    main()
