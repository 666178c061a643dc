"""Behaviour of the core methods (FT, GA, CT, MSG, retrain) on class-3 forgetting.

Each test runs the method (``method(...)`` calls the jitted function, key 0) from the
overfit original of a session fixture (``class_task``: MLP, or ``cnn_task``: small CNN with
BatchNorm; both trained 30 epochs, RA ~1.0, FA 1.0, TA 0.975) and checks that

* forget accuracy moves toward the retrained model's (FA_r = 0.0):
  ``|FA_u - FA_r| < |FA_o - FA_r|`` plus an explicit per-method bound, and
* test accuracy stays within a stated tolerance of the original's.

Forgetting a whole class costs its test rows too: the forget class is 36 of the 360 test
rows, so a model that forgets it perfectly loses ~0.1 of TA (the retrained fixtures: TA
0.975 -> 0.869 MLP, 0.878 CNN). Tolerances below are stated relative to TA_o with that in
mind. Forget set: 128 rows, so 0.05 of FA is ~6 rows.

Measured numbers: jax on the 2-core CPU, key 0, RA / FA / TA.
"""

import jax

from jaxmu.methods import get_method
from jaxmu.train import split_accuracies


def _unlearn(t, name, **hp):
    """Runs ``name`` (jitted, key 0) from the task's original; accuracies of the result."""
    m = get_method(name, **hp).bind(t.model)
    p, s = m(t.params, t.model_state, t.splits, jax.random.key(0))
    return split_accuracies(t.model, p, s, t.splits)


def _moves_toward_retrain(acc, t):
    fa_r = t.acc_retrain["forget"]
    return abs(acc["forget"] - fa_r) < abs(t.acc_original["forget"] - fa_r)


def test_ft_behaviour_class_task(class_task):
    # Hyperparameters: defaults (5 epochs, lr 0.1, momentum 0.9, wd 5e-4, cosine) except
    # batch 64 (the fixtures' training batch) instead of 256: on 1093 retain rows the default
    # batch gives only 25 steps, and FT genuinely barely forgets then (measured 1.00 / 0.984 /
    # 0.972, 2 of 128 forget rows flipped). Batch 64 (90 steps), measured:
    # RA 1.00 -> 1.00, FA 1.00 -> 0.906, TA 0.975 -> 0.956 (retrain 1.00 / 0.00 / 0.869).
    # (10 epochs at batch 256: FA 0.938; 20 epochs: FA 0.914, TA 0.956.)
    # FT has no forgetting term, only slow decay of the unseen class, so FA moves a little.
    # Asserted: FA drops by >= 0.05 (>= 6 rows); TA within 0.05 of the original's (the class
    # is only partly forgotten, so TA should barely drop); RA >= 0.95.
    t = class_task
    acc = _unlearn(t, "ft", batch_size=64)
    assert _moves_toward_retrain(acc, t)
    assert acc["forget"] <= t.acc_original["forget"] - 0.05
    assert acc["test"] >= t.acc_original["test"] - 0.05
    assert acc["retain"] >= 0.95


def test_ga_behaviour_class_task(class_task):
    # Hyperparameters: the defaults (10 epochs, batch 256 = one full forget batch per epoch,
    # lr 0.01, momentum 0.9, wd 5e-4, no schedule). Measured:
    # RA 1.00 -> 1.00, FA 1.00 -> 0.883, TA 0.975 -> 0.964 (retrain 1.00 / 0.00 / 0.869).
    # The unbounded ascent runs away soon after: FA by epochs 8/9/10/11/12 = 0.992 / 0.945 /
    # 0.883 / 0.734 / 0.266 (TA at 12: 0.881), and lr 0.02 (or batch 64) collapses every
    # class (RA 0.26 / 0.11, TA 0.25 / 0.10). The defaults stop before the run-off.
    # Asserted: FA drops by >= 0.05 (>= 6 rows); TA within 0.05 of the original's (no
    # collapse: GA has no retain term, so a collapse would show here first); RA >= 0.95.
    t = class_task
    acc = _unlearn(t, "ga")
    assert _moves_toward_retrain(acc, t)
    assert acc["forget"] <= t.acc_original["forget"] - 0.05
    assert acc["test"] >= t.acc_original["test"] - 0.05
    assert acc["retain"] >= 0.95


def test_ct_behaviour_cnn_task(cnn_task):
    # CT's forgetting step transposes conv kernels, so it is tested on the CNN (on the MLP it
    # is only FT at lr 1e-3: measured FA 1.00 -> 1.00, TA 0.978, i.e. no forgetting at all).
    # Hyperparameters: defaults (3 epochs, batch 64, momentum 0.9, wd 5e-4, cosine) except
    # lr 0.05. With the default lr 1e-3 the 3 epochs (54 steps) cannot repair the transposed
    # features on 8x8 digits and CT genuinely fails here: measured 0.457 / 0.094 / 0.397 (TA
    # collapses; lr 0.01: 0.876 / 0.00 / 0.761). lr 0.05, measured:
    # RA 0.996 -> 0.944, FA 1.00 -> 0.00, TA 0.975 -> 0.825 (retrain 0.998 / 0.00 / 0.878).
    # Asserted: FA <= 0.1 (within 0.1 of retrain's); TA >= TA_o - 0.2: 0.1 for the forgotten
    # class's test rows (retrain loses them too) + 0.1 for the transposition's damage that
    # fine-tuning has not fully repaired (measured TA_r - 0.053); RA >= 0.85.
    t = cnn_task
    acc = _unlearn(t, "ct", lr=0.05)
    assert _moves_toward_retrain(acc, t)
    assert acc["forget"] <= t.acc_retrain["forget"] + 0.1
    assert acc["test"] >= t.acc_original["test"] - 0.2
    assert acc["retain"] >= 0.85


def test_msg_behaviour_cnn_task(cnn_task):
    # MSG re-initialises the smallest-|G| conv entries (its reference setting), so it is
    # tested on the CNN. Hyperparameters: defaults (5 epochs, batch 64, init_rate 0.3, kept
    # grads x0.1, triangular lr, momentum 0.9, wd 5e-4) except lr 0.01 (default 1e-3:
    # measured 0.848 / 0.414 / 0.803, it forgets but recovers less; lr 3e-3: 0.937 / 0.305 /
    # 0.878). lr 0.01, measured:
    # RA 0.996 -> 0.971, FA 1.00 -> 0.148, TA 0.975 -> 0.892 (retrain 0.998 / 0.00 / 0.878).
    # (On the class-3 MLP, dense kernels: defaults 0.968 / 0.961 / 0.922; lr 0.01 and
    # init_rate 0.5: 0.987 / 0.805 / 0.939.)
    # Asserted: FA <= 0.3; TA >= TA_o - 0.15: 0.1 for the forgotten class's test rows + 0.05
    # slack (measured TA above the retrained model's); RA >= 0.9.
    t = cnn_task
    acc = _unlearn(t, "msg", lr=0.01)
    assert _moves_toward_retrain(acc, t)
    assert acc["forget"] <= 0.3
    assert acc["test"] >= t.acc_original["test"] - 0.15
    assert acc["retain"] >= 0.9


def test_retrain_behaviour_class_task(class_task):
    # Hyperparameters: the defaults (fresh init from the key, 30 epochs, batch 256, lr 0.1,
    # momentum 0.9, wd 5e-4, cosine, random-crop augmentation); the original's params are
    # ignored. (10 epochs for speed is too few: measured TA 0.733.) Measured:
    # RA 1.00 -> 0.964, FA 1.00 -> 0.00, TA 0.975 -> 0.844 (retrain fixture, trained with
    # fit's recipe: batch 64, lr 0.05, no augmentation: 1.00 / 0.00 / 0.869; without
    # augmentation the method gives 1.00 / 0.00 / 0.861).
    # Asserted: FA <= 0.05 (exact unlearning: the class is never seen); TA within 0.05 of
    # the retrain fixture's (a different init and recipe) and so within 0.15 of the
    # original's (0.1 for the forgotten class's test rows + 0.05); RA >= 0.9.
    t = class_task
    acc = _unlearn(t, "retrain")
    assert _moves_toward_retrain(acc, t)
    assert acc["forget"] <= 0.05
    assert abs(acc["test"] - t.acc_retrain["test"]) <= 0.05
    assert acc["test"] >= t.acc_original["test"] - 0.15
    assert acc["retain"] >= 0.9
