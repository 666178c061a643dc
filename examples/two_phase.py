"""A two-phase unlearning method in one file, from jaxmu's public pieces.

``rounds`` times: a forget phase (gradient ascent on the forget set's cross-entropy),
then a retain phase (descent on the retain set's cross-entropy). Both phases step ONE
optax optimizer: its state (momentum buffer and the schedule's update count) lives in
``UnlearnState.aux["two_phase_opt"]`` and each phase continues from where the other left
it, as PyTorch code does with one ``torch.optim.SGD`` used in two loops.

Usage (``params, model_state`` of a trained ``model``, ``splits`` a
:class:`jaxmu.types.Splits`), as a stage::

    stage = two_phase(rounds=3)
    out = jax.jit(stage)(UnlearnState(params, model_state, {}, model), splits, key)
    out.params, out.model_state, out.aux["two_phase_opt"]

or, once this file is imported (which registers it), as a method like the built-in ones::

    method = jaxmu.get_method("two_phase", rounds=2).bind(model)   # or TwoPhaseConfig(...)
    params, model_state = method(params, model_state, splits, key)
"""

from __future__ import annotations

import dataclasses

import optax

from jaxmu import losses
from jaxmu.methods import HP, LR, MOMENTUM, UNIT, MethodConfig, hparam, register
from jaxmu.stages import finetune, init_optimizer, repeat, sequence
from jaxmu.train import steps_per_epoch, torch_sgd

OPT = "two_phase_opt"


def two_phase(rounds: int = 3, lr: float = 0.02, momentum: float = 0.9,
              weight_decay: float = 0.0, ascent_weight: float = 0.5,
              batch_size: int = 32, retain_epochs: float = 1.0):
    """Alternates forget ascent and retain descent with one shared SGD.

    Args:
        rounds: forget/retain alternations.
        lr: base learning rate, decayed by a cosine over all steps of both phases (an optax
            schedule of the shared optimizer's update count).
        momentum, weight_decay: PyTorch SGD's.
        ascent_weight: the forget phase minimises ``-ascent_weight * CE``.
        batch_size: both phases' batch size.
        retain_epochs: passes over the retain set per round.

    Returns:
        A stage ``(state, splits, key) -> state``; the optimizer state stays in
        ``state.aux["two_phase_opt"]``.
    """
    def stage(state, splits, key):
        # The schedule needs the total step count, known once the split sizes are.
        f_steps = steps_per_epoch(splits.n_forget, batch_size)
        r_steps = int(steps_per_epoch(splits.n_retain, batch_size) * retain_epochs)
        tx = torch_sgd(optax.cosine_decay_schedule(lr, rounds * (f_steps + r_steps)),
                       momentum, weight_decay)
        forget = finetune(-ascent_weight * losses.ce(), tx, split="forget",
                          batch_size=batch_size, opt_state=OPT)
        retain = finetune(losses.ce(), tx, split="retain", epochs=retain_epochs,
                          batch_size=batch_size, opt_state=OPT)
        method = sequence(init_optimizer(OPT, tx), repeat(sequence(forget, retain), rounds))
        return method(state, splits, key)

    return stage


def _at_least_one(name, value):
    """A field check ``check(name, value)``: raises ``ValueError`` naming the field."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoPhaseConfig(MethodConfig):
    """two_phase's hyperparameters: default, search range and check of each field."""

    rounds: int = hparam(3, HP("int", 1, 5), check=_at_least_one)   # searched, static
    lr: float = LR(0.02)                   # searched log-uniformly in [1e-5, 1e-1], traced
    momentum: float = MOMENTUM(0.9)
    weight_decay: float = 0.0              # a plain default: not searched
    ascent_weight: float = UNIT(0.5)       # searched in [0, 1], traced
    batch_size: int = 32
    retain_epochs: float = 1.0
    touches = "all"                        # what it may change (the conformance check)


@register("two_phase", config=TwoPhaseConfig,
          summary="rounds of forget ascent then retain descent; one shared SGD",
          paper="jaxmu example", section="docs/writing-a-method.md")
def build_two_phase(c: TwoPhaseConfig):
    """The registered method: the stage above with the config's values."""
    return two_phase(rounds=c.rounds, lr=c.lr, momentum=c.momentum,
                     weight_decay=c.weight_decay, ascent_weight=c.ascent_weight,
                     batch_size=c.batch_size, retain_epochs=c.retain_epochs)
