"""`python -m portproof` is the `portproof` command."""

from .cli import run

# The guard matters wherever multiprocessing imports the parent's main module again in a child.
if __name__ == "__main__":
    run()
