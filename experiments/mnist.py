"""`python -m experiments.mnist`: unlearning on mnist (see experiments/_cli.py).

The data comes from the four MNIST IDX files (raw or ``.gz``) or tfds data in
``--data-dir``, else from tfds' default folder.
"""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("mnist"))
