"""`python -m experiments.fashion_mnist`: unlearning on fashion_mnist (see experiments/_cli.py)."""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("fashion_mnist"))
