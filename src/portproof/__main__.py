"""`python -m portproof` is the `portproof` command."""

import sys

from .cli import main

sys.exit(main())
