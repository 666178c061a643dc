"""`python -m experiments.cifar10`: unlearning on cifar10 (see experiments/_cli.py)."""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("cifar10"))
