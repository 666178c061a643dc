"""The full single-model metric record from logits (``jaxmu.evaluate`` builds on it).

References:
    docs/evaluation.md: Deep Unlearn's metrics (accuracies, retention, RetDev, U-MIA,
    indiscernibility, RTE) and those of SFTC, Akbari et al. and the comparative analysis of
    competition approaches (SAPE errors, JS divergence, classifier and feature MIAs, MIA AUC).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from jaxtyping import ArrayLike

from jaxmu.metrics import _accuracy, _distances, _mia, _timing

SPLITS = ("retain", "forget", "val", "test")
_ABBREV = {"retain": "ra", "forget": "fa", "val": "va", "test": "ta"}
_GAP_FEATURES = ("correctness", "confidence", "entropy", "prob")  # Akbari et al., Table 1
_LOSS_MIA_TEST_SIZE = 0.1  # Deep Unlearn's StratifiedShuffleSplit(test_size=0.1)


class MIASkippedWarning(UserWarning):
    """An MIA of :func:`evaluate_logits` was skipped because a split is too small for it.

    The record then lacks that MIA's keys; the message names the keys, the split sizes and
    the minimum. Silence with ``warnings.simplefilter("ignore", MIASkippedWarning)``, or
    collect with ``warnings.catch_warnings(record=True)`` (the experiment CLIs write the
    messages to the JSON record's ``"warnings"`` list).
    """


def _min_loss_mia_size(test_size: float = _LOSS_MIA_TEST_SIZE) -> int:
    """Smallest balanced set size ``n`` for which the loss MIA's stratified split exists:
    at least 2 held-out and 2 training examples out of ``2 n`` (the check in
    :func:`jaxmu.metrics.population_mia`)."""
    n = 1
    while True:
        n_test = int(np.ceil(test_size * 2 * n))
        if n_test >= 2 and 2 * n - n_test >= 2:
            return n
        n += 1


def _plural(n: int) -> str:
    return f"{n} example{'s' if n != 1 else ''}"


def _split_logits(name: str, logits: Mapping[str, ArrayLike] | None, labels) -> dict:
    if logits is None:
        return {}
    if not isinstance(logits, Mapping):
        raise ValueError(f"{name}: expected a mapping split -> logits, got "
                         f"{type(logits).__name__}")
    bad = set(logits) - set(SPLITS)
    if bad:
        raise ValueError(f"{name}: unknown split(s) {sorted(bad)}; expected {SPLITS}")
    missing = set(logits) - set(labels)
    if missing:
        raise ValueError(f"labels: missing for split(s) {sorted(missing)} of {name}")
    return dict(logits)


def _model_metrics(prefix: str, logits: dict, labels: Mapping, mia_seed: int,
                   skipped: list[str]) -> dict:
    out = {}
    for split, z in logits.items():
        out[f"{prefix}{_ABBREV[split]}"] = float(_accuracy.accuracy(z, labels[split]))
    if "forget" in logits:
        f_loss = _mia.cross_entropy_losses(logits["forget"], labels["forget"])
        need = _min_loss_mia_size()
        for ref in ("test", "val"):
            if ref in logits:
                n_f, n_r = len(logits["forget"]), len(logits[ref])
                if min(n_f, n_r) < need:
                    skipped.append(
                        f"loss MIA vs {ref} skipped (no mia_{ref}, indisc_{ref}, "
                        f"mia_auc_{ref} keys): forget has {_plural(n_f)} and {ref} "
                        f"{_plural(n_r)}, the attack needs at least {need} in each")
                    continue
                r_loss = _mia.cross_entropy_losses(logits[ref], labels[ref])
                acc, auc = _mia._loss_attack(f_loss, r_loss, mia_seed, 10, 0.1, 123)
                out[f"{prefix}mia_{ref}"] = acc
                out[f"{prefix}indisc_{ref}"] = _mia.indiscernibility(acc)
                out[f"{prefix}mia_auc_{ref}"] = auc
    return out


def evaluate_logits(
    unlearned: Mapping[str, ArrayLike],
    labels: Mapping[str, ArrayLike],
    *,
    original: Mapping[str, ArrayLike] | None = None,
    retrained: Mapping[str, ArrayLike] | None = None,
    timings: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    mia_seed: int = 123,
    seed: int = 0,
    classifier: str | None = "hgb",
    feature_classifier: str | None = "svc",
    mia_max_samples: int | None = None,
) -> dict[str, float]:
    """Every single-model metric of jaxmu as a flat, JSON-serialisable dict of floats.

    Args:
        unlearned: split name ("retain", "forget", "val", "test") -> logits ``[N, K]`` of the
            unlearned model; "forget" is required.
        labels: split name -> integer labels ``[N]``.
        original, retrained: the same mappings for the original and the retrained model.
        timings: optional ``run_seconds``, ``compile_seconds`` and ``reference_seconds``
            (the retrain time, for RTE).
        params: optional parameter pytrees under "unlearned", "original", "retrained" for
            weight distances (parameters only, no BatchNorm statistics).
        mia_seed: shuffling seed of the loss MIAs. seed: seed of the classifier MIAs.
        classifier: attacker of :func:`classifier_mia` ("hgb", "catboost", ...) or None to
            skip it. feature_classifier: attacker of :func:`feature_mia` or None to skip.
        mia_max_samples: per-class cap on the classifier/feature MIA training sets.

    Returns:
        Keys present when their inputs are (models: ``""`` unlearned, ``original_``,
        ``retrained_`` prefixes): ``ra fa va ta``; ``mia_test indisc_test mia_auc_test``
        (and ``_val``); with retrained: ``rr fr tr retdev acc_err_retrained acc_dis``;
        with original: ``acc_err_original js_original``; ``classifier_mia`` (retain, test,
        forget needed); ``feature_mia_<feature>`` and, with retrained,
        ``feature_mia_gap_<feature>`` and ``feature_mia_mean_gap`` (mean gap over
        correctness, confidence, entropy and prob: the "best attack" column of Akbari et
        al.'s Table 1); ``run_seconds compile_seconds rte``; ``l2_to_retrained
        golatkar_to_retrained normalized_l2_to_retrained`` (and ``_to_original``).
        Accuracies are fractions; SAPE-based errors are in percent. A retention whose
        reference accuracy is 0 is left out.

    Warns:
        MIASkippedWarning: when a split is too small for the loss MIA (fewer than 6 forget
            or reference examples): that reference's ``mia_``, ``indisc_`` and ``mia_auc_``
            keys are left out for every model, and one warning per skipped attack says why.
            The classifier and feature MIAs need one example per split and always run.

    Raises:
        ValueError: on bad logits/labels or unknown splits.

    References:
        Deep Unlearn (Cadet et al. 2024) §2; SFTC (Perifanis et al. 2024) §5.4; Akbari et
        al., "Machine Unlearning", Table 1; docs/evaluation.md.
    """
    if not isinstance(labels, Mapping):
        raise ValueError("labels: expected a mapping split -> labels")
    if not isinstance(unlearned, Mapping) or "forget" not in unlearned:
        raise ValueError("unlearned: expected a mapping split -> logits with a 'forget' split")
    u = _split_logits("unlearned", unlearned, labels)
    o = _split_logits("original", original, labels)
    r = _split_logits("retrained", retrained, labels)
    skipped: list[str] = []
    rec = _model_metrics("", u, labels, mia_seed, skipped)
    rec.update(_model_metrics("original_", o, labels, mia_seed, skipped))
    rec.update(_model_metrics("retrained_", r, labels, mia_seed, skipped))
    for msg in dict.fromkeys(skipped):  # the same sizes for U, O and R: warn once
        warnings.warn(msg, MIASkippedWarning, stacklevel=2)
    if r:
        for key in ("ra", "fa", "ta"):
            if key in rec and f"retrained_{key}" in rec and rec[f"retrained_{key}"] > 0:
                rec[key[0] + "r"] = _accuracy.retention(rec[key], rec[f"retrained_{key}"])
        if all(k in rec for k in ("rr", "fr", "tr")):
            rec["retdev"] = _accuracy.retdev(rec["rr"], rec["fr"], rec["tr"])
    rec.update(_accuracy.accuracy_errors(
        rec.get("ta", 0.0), rec["fa"],
        ta_r=rec.get("retrained_ta") if "ta" in rec else None,
        fa_r=rec.get("retrained_fa"),
        ta_o=rec.get("original_ta") if "ta" in rec else None,
    ))
    if "forget" in o:
        rec["js_original"] = _distances.js_divergence(u["forget"], o["forget"])
    if classifier is not None and {"retain", "test"} <= set(u):
        rec["classifier_mia"] = _mia.classifier_mia(
            u["retain"], u["test"], u["forget"], classifier=classifier, seed=seed,
            max_samples=mia_max_samples)
    if feature_classifier is not None:
        rec.update(_feature_mias(u, r, labels, feature_classifier, seed, mia_max_samples))
    rec.update(_timings(timings))
    rec.update(_param_distances(params))
    return {k: float(v) for k, v in rec.items()}


def _feature_mias(u, r, labels, classifier, seed, max_samples) -> dict:
    out: dict[str, float] = {}
    models = [("", u)] + ([("retrained_", r)] if r else [])
    for prefix, logits in models:
        if not {"retain", "test", "forget"} <= set(logits):
            continue
        res = _mia.feature_mia(
            logits["retain"], labels["retain"], logits["test"], labels["test"],
            logits["forget"], labels["forget"], classifier=classifier, seed=seed,
            max_samples=max_samples)
        out.update({f"{prefix}feature_mia_{k}": v for k, v in res.items()})
    if "retrained_feature_mia_prob" in out and "feature_mia_prob" in out:
        for f in _mia.FEATURES:
            out[f"feature_mia_gap_{f}"] = abs(out[f"feature_mia_{f}"]
                                              - out[f"retrained_feature_mia_{f}"])
        out["feature_mia_mean_gap"] = float(np.mean([out[f"feature_mia_gap_{f}"]
                                                     for f in _GAP_FEATURES]))
    return out


def _timings(timings: Mapping[str, float] | None) -> dict:
    if not timings:
        return {}
    known = {"run_seconds", "compile_seconds", "reference_seconds"}
    bad = set(timings) - known
    if bad:
        raise ValueError(f"timings: unknown key(s) {sorted(bad)}; expected {sorted(known)}")
    out = {k: float(v) for k, v in timings.items() if k != "reference_seconds"}
    if "reference_seconds" in timings and "run_seconds" in timings:
        out["rte"] = _timing.rte(timings["reference_seconds"], timings["run_seconds"])
    return out


def _param_distances(params: Mapping[str, Any] | None) -> dict:
    if not params:
        return {}
    bad = set(params) - {"unlearned", "original", "retrained"}
    if bad:
        raise ValueError(f"params: unknown key(s) {sorted(bad)}")
    out = {}
    if "unlearned" not in params:
        return out
    for ref in ("retrained", "original"):
        if ref in params:
            a, b = params["unlearned"], params[ref]
            out[f"l2_to_{ref}"] = _distances.l2_distance(a, b)
            out[f"golatkar_to_{ref}"] = _distances.golatkar_distance(a, b)
            out[f"normalized_l2_to_{ref}"] = _distances.normalized_l2_distance(a, b)
    return out
