"""SIGKILL soak of an unlearning population and of a study: killed at random points and
rerun, they end with the results of an uninterrupted run and never a half-written file.

* Unlearning population, the competition F-score: a retrained population of 4 models and
  4 unlearning runs of ``ft`` from the original, F-score with bootstrap CIs. Trained models
  and populations resume from their epoch checkpoints, finished populations' logits come
  from the population store; unlearning runs cut off by a kill are redone. U-LiRA (4 shadow
  originals, 1 forget set each) is soaked the same way in the slow set.
* Study: one method, 2 Optuna trials, 1 search seed, 1 final seed, report included (and,
  in the slow set, 6 trials over two NSGA-III generations of 4, so that more kills land in
  the search).
  Completed trials must never be lost or changed by a kill. A kill inside a trial leaves it
  RUNNING; the restarted study rebuilds its sampler by replaying the stored trials and
  resumes that trial under its number with its parameters (:func:`jaxmu.sweep.run_study`),
  so every episode must end with the uninterrupted study's trials (numbers, parameters,
  values) and every result file equal to the uninterrupted run's: the selection, final
  runs, ranking and report data are as if never killed.

The default run soaks the library path at its smallest (``_soak_api_worker.py``: 96
digits, 2 kills each, the XLA cache shared with the reference, about 70 s of CPU); the slow
set soaks the experiment CLI (``python -m experiments.digits``, 1797 digits, 20 kills each,
its own cold XLA cache so kills also land in cache writes). ``_kill_soak.py`` says how
kills are placed and what is checked after each. Seeded; where the kills land still varies
with the machine's speed.
"""

from __future__ import annotations

import random

import pytest
from _kill_soak import Soak, api, cli, complete_trials, results

COMMON = ["--epochs", "2", "--no-mia", "--method", "ft", "--hp", "epochs=1"]
CLI = {
    "fscore": cli(*COMMON, "--eval", "fscore", "--models", "4"),
    "ulira": cli(*COMMON, "--eval", "ulira", "--shadows", "4", "--forget-sets", "1"),
    "study": cli("--epochs", "2", "--no-mia", "--benchmark", "--methods", "ft", "--trials",
                 "2", "--search-seeds", "1", "--seeds", "1", "--population-size", "4"),
    # 6 trials over two NSGA-III generations: more of the run is the search.
    "search": cli("--epochs", "2", "--no-mia", "--benchmark", "--methods", "ft", "--trials",
                  "6", "--search-seeds", "1", "--seeds", "1", "--population-size", "4"),
}
CLI_DB = "out/digits/benchmark-mlp/study.db"
API_DB = "out/study/study.db"


def unlearning_soak(tmp_path, cmd: list[str], kills: int, seed: int, shared_xla: bool,
                    ref_xla=None) -> Soak:
    soak = Soak(cmd, tmp_path, shared_xla=shared_xla, ref_xla=ref_xla)
    ref, window = soak.reference("ref")
    want = results(ref / "out")
    assert len(want) == 1  # the result JSON
    rng = random.Random(seed)
    while soak.kills < kills:
        done = soak.episode(rng, window, kills)
        assert results(done / "out") == want  # bitwise, timings and provenance aside
    return soak


def study_soak(tmp_path, cmd: list[str], db: str, kills: int, seed: int, shared_xla: bool,
               ref_xla=None) -> Soak:
    soak = Soak(cmd, tmp_path, db=db, shared_xla=shared_xla, ref_xla=ref_xla)
    ref, window = soak.reference("ref")
    want, want_trials = results(ref / "out"), complete_trials(ref / db)
    assert {"best_hparams.json", "study.json", "report.md"} <= {k.split("/")[-1] for k in want}
    rng = random.Random(seed)
    while soak.kills < kills:
        done = soak.episode(rng, window, kills)
        assert complete_trials(done / db) == want_trials  # numbers, parameters, values
        assert results(done / "out") == want  # bitwise, timings and provenance aside
    return soak


@pytest.fixture(scope="module")
def xla(tmp_path_factory):
    """One XLA cache for the default-run soaks (their programs overlap)."""
    return tmp_path_factory.mktemp("xla")


def test_a_few_kills_of_an_unlearning_population(tmp_path, xla):
    soak = unlearning_soak(tmp_path, api("fscore"), kills=2, seed=0, shared_xla=True,
                           ref_xla=xla)
    assert soak.kills == 2 and soak.checked["files"] > 0


def test_a_few_kills_of_a_study(tmp_path, xla):
    soak = study_soak(tmp_path, api("study"), API_DB, kills=2, seed=0, shared_xla=True,
                      ref_xla=xla)
    assert soak.kills == 2 and soak.checked["steps"] > 0
    print(f"study: {soak.kills} kills ({soak.in_trial} inside a trial), {soak.rounds} runs, "
          f"{soak.episodes} episodes")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fscore", "ulira"])
def test_twenty_kills_of_an_unlearning_population_cli(tmp_path, kind):
    soak = unlearning_soak(tmp_path, CLI[kind], kills=20, seed=1, shared_xla=False)
    print(f"{kind}: {soak.kills} kills, {soak.rounds} runs, {soak.episodes} episodes, "
          f"checked {soak.checked}, report temporaries left {soak.report_temporaries_left}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["study", "search"])
def test_twenty_kills_of_a_study_cli(tmp_path, kind):
    soak = study_soak(tmp_path, CLI[kind], CLI_DB, kills=20, seed=1, shared_xla=False)
    print(f"{kind}: {soak.kills} kills ({soak.in_trial} inside a trial), {soak.rounds} runs, "
          f"{soak.episodes} episodes, all "
          f"with the uninterrupted trials and results, checked {soak.checked}, report "
          f"temporaries left {soak.report_temporaries_left}")
