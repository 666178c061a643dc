"""`python -m experiments.mnist`: unlearning on mnist (see experiments/_cli.py)."""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("mnist"))
