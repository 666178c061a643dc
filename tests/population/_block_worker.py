"""Trains one block of model ids of a fixed population and saves it (run as a separate
process by test_blocks_from_separate_processes_merge_to_the_one_process_run).

python _block_worker.py OUT_DIR FIRST_ID LAST_ID_EXCLUSIVE
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _helpers import digits_subset_splits  # noqa: E402

from jaxmu.models import mlp  # noqa: E402
from jaxmu.population import balanced_masks, fit_population, save_population  # noqa: E402
from jaxmu.train import TrainConfig  # noqa: E402

MODEL = mlp((8, 8, 1), 10, hidden=(16,))
CFG = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False)
M, ROOT = 6, 11


def design():
    s = digits_subset_splits(n=96, n_forget=8, n_val=8, n_test=16)
    return s.pool, balanced_masks(3, M, s.mask("train"))


if __name__ == "__main__":
    out, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pool, masks = design()
    r = fit_population(MODEL, pool, masks[a:b], ROOT, CFG, ids=range(a, b), strategy="vmap",
                       progress=False)
    save_population(r, out, MODEL)
