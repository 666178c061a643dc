"""`python -m experiments.fashion_mnist`: unlearning on fashion_mnist (see experiments/_cli.py).

The data comes from the IDX files or tfds data in ``--data-dir``, else from
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``), else from
tfds' default folder.
"""

import sys

from experiments._cli import main

if __name__ == "__main__":
    sys.exit(main("fashion_mnist"))
