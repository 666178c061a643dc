"""O: the original model, unchanged (the reference point "no unlearning")."""

import dataclasses

from jaxmu.methods._config import MethodConfig
from jaxmu.methods._core import Reference, register


@dataclasses.dataclass(frozen=True, kw_only=True)
class OriginalConfig(MethodConfig):
    """O has no hyperparameters and changes nothing."""

    touches = "none"


def _is_o(trained):
    """An experiment's answer for ``original``: O itself, at no cost."""
    return trained.original, 0.0, 0.0


@register("original", config=OriginalConfig, summary="no-op: return the original model",
          paper="Deep Unlearn (004)", section="docs/methods.md#original", random=False,
          reference=Reference(_is_o))
def original(c: OriginalConfig):
    """Identity stage.

    A reference method: an experiment reports the original O it trained (no run, no
    cost), never searches or ranks it.

    References:
        Cadet et al., Deep Unlearn (2024); docs/methods.md#original.
    """
    return lambda state, splits, key: state
