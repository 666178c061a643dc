"""O: the original model, unchanged (the reference point "no unlearning")."""

import dataclasses

from jaxmu.methods._config import MethodConfig
from jaxmu.methods._core import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class OriginalConfig(MethodConfig):
    """O has no hyperparameters and changes nothing."""

    touches = "none"


@register("original", config=OriginalConfig, summary="no-op: return the original model",
          paper="Deep Unlearn (004)", section="docs/methods.md#original", random=False)
def original(c: OriginalConfig):
    """Identity stage.

    References:
        Cadet et al., Deep Unlearn (2024); docs/methods.md#original.
    """
    return lambda state, splits, key: state
