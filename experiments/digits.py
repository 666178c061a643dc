"""`python -m experiments.digits`: unlearning on digits (see experiments/_cli.py)."""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("digits"))
