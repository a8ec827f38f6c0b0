"""`python -m portproof` is the `portproof` command."""

import sys

from .cli import main

# The guard matters: a side's process (worker.py) imports the parent's main module again.
if __name__ == "__main__":
    sys.exit(main())
