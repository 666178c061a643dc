"""`python -m experiments.cifar100`: unlearning on cifar100 (see experiments/_cli.py)."""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("cifar100"))
