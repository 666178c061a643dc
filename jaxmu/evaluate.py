"""The full metric record of an unlearned model (used by the experiment CLIs).

References:
    methods-spec §6 (accuracies, MIA, retention, RetDev, RTE); evaluation-spec §7.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def experiment_metrics(model, o, r, u, splits, acc, t_retrain: float, t_method: float, *,
                       mia: bool = True) -> dict[str, Any]:
    """Retention (RR, FR, TR) and RetDev of U vs R, RTE, and the val/test population MIA of
    O, R and U. ``o``, ``r``, ``u`` are ``(params, model_state)`` pairs; ``acc`` the
    accuracies from :func:`jaxmu.train.split_accuracies` keyed by model."""
    ua, ra = acc["unlearned"], acc["retrain"]

    def ret(new, ref):
        return float(new / ref) if ref > 0 else float("nan")

    rr, fr, tr = (ret(ua[s], ra[s]) for s in ("retain", "forget", "test"))
    out: dict[str, Any] = {
        "retention": {"RR": rr, "FR": fr, "TR": tr,
                      "RetDev": float(abs(1 - rr) + abs(1 - fr) + abs(1 - tr))},
        "rte": float(t_retrain / t_method) if t_method > 0 else float("inf"),
    }
    if mia:
        out["mia"] = {}
        out["mia_val"] = {}
        for who, (p, s) in (("original", o), ("retrain", r), ("unlearned", u)):
            out["mia"][who] = _mia(model, p, s, splits, "test")
            out["mia_val"][who] = _mia(model, p, s, splits, "val")
        out["indiscernibility"] = {k: float(1 - abs(2 * v - 1)) for k, v in out["mia"].items()}
    return out


def _mia(model, params, state, splits, ref: str) -> float:
    from jaxmu.train import labels, predict

    if splits.size(ref) == 0:
        return float("nan")
    lf = predict(model, params, state, splits, "forget")
    lr = predict(model, params, state, splits, ref)
    return float(_population_mia(np.asarray(lf), np.asarray(labels(splits, "forget")),
                                 np.asarray(lr), np.asarray(labels(splits, ref))))


def _population_mia(lf, yf, lr, yr) -> float:
    from jaxmu.metrics import population_mia

    return population_mia(lf, yf, lr, yr)
