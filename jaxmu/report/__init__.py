"""jaxmu.report: a benchmark study (HP sweep, multi-seed runs, ranking) as a report directory.

:func:`write_report` turns the study dict of ``jaxmu.sweep`` into ``report.md`` (budget and
provenance, Table 1 rankings, Table 2 run-time efficiency, per-method metrics with 95% CIs,
chosen hyperparameters, and with audits one table per audit: KLoM, RMIA / U-RMIA,
relearning, attack power vs shadow count), ``results.csv`` (long format), ``results.json``
(the study, NaN as null) and PNG figures. The table builders are public for use in
notebooks and papers.
:func:`combine_studies` ranks several studies (one per dataset and architecture) together,
Deep Unlearn's Table 1 over settings, and :func:`write_combined_report` writes it
(``python -m jaxmu.report combine OUT_DIR STUDY [STUDY ...]``). The ranking itself
(:func:`rank_methods`, Deep Unlearn's performance groups; :func:`study_ranking` of a study's
:func:`ranking_rows`) lives here too, and ``jaxmu.sweep`` re-exports it.

References:
    Cadet et al., Deep Unlearn (2024) Tables 1-2. In this repository: the metrics in
    docs/evaluation.md, the ranking in docs/evaluation.md#ranking, the hyperparameter
    search in docs/methods.md#search.
"""

from jaxmu.report._audit_tables import (
    audit_ulira_table_markdown,
    audits_section_markdown,
    klom_table_markdown,
    relearn_table_markdown,
    rmia_table_markdown,
    shadow_curve_table_markdown,
)
from jaxmu.report._combine import combine_studies, write_combined_report
from jaxmu.report._plots import agg_figure
from jaxmu.report._ranking import (
    GROUPS,
    LOWER_IS_BETTER,
    REFERENCES,
    performance_groups,
    rank_methods,
    ranking_rows,
    setting_name,
    study_ranking,
)
from jaxmu.report._recipes import recipes_markdown
from jaxmu.report._tables import ranking_table_markdown, rte_table_markdown
from jaxmu.report._validate import json_safe, validate_study
from jaxmu.report._write import csv_rows, write_report

__all__ = [
    "GROUPS",
    "LOWER_IS_BETTER",
    "REFERENCES",
    "agg_figure",
    "audit_ulira_table_markdown",
    "audits_section_markdown",
    "combine_studies",
    "csv_rows",
    "json_safe",
    "klom_table_markdown",
    "performance_groups",
    "rank_methods",
    "ranking_rows",
    "ranking_table_markdown",
    "recipes_markdown",
    "relearn_table_markdown",
    "rmia_table_markdown",
    "rte_table_markdown",
    "shadow_curve_table_markdown",
    "setting_name",
    "study_ranking",
    "validate_study",
    "write_combined_report",
    "write_report",
]
