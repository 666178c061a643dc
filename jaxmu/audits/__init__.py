"""Audits of unlearned populations against retrained ones, all from one cached population.

:func:`run_audits` runs U-LiRA, KLoM, RMIA / U-RMIA, the relearning attack and the curve
of attack power against the number of shadow models on one design population (shadow
originals on balanced halves of the train candidates, K forget sets each; the method's
runs and an independent exact-unlearning population), whose logits come from the
population store (:class:`jaxmu.population.PopulationStore`), so each is trained once.
:mod:`jaxmu.score` scores populations unlearned elsewhere.
"""

from jaxmu.audits._pipeline import (
    AUDITS,
    AuditConfig,
    audit_klom,
    audit_relearn,
    audit_rmia,
    audit_shadow_curve,
    run_audits,
)
from jaxmu.audits._relearn import RelearnConfig, RelearnCurves, relearn_curves, relearn_summary

__all__ = [
    "AUDITS",
    "AuditConfig",
    "RelearnConfig",
    "RelearnCurves",
    "audit_klom",
    "audit_relearn",
    "audit_rmia",
    "audit_shadow_curve",
    "relearn_curves",
    "relearn_summary",
    "run_audits",
]
