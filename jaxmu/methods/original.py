"""O: the original model, unchanged (the reference point "no unlearning")."""

from jaxmu.methods._core import register


@register("original", defaults={}, space={}, summary="no-op: return the original model",
          paper="Deep Unlearn (004)", section="docs/methods.md#original", random=False,
          touches="none")
def original():
    """Identity stage.

    References:
        Cadet et al., Deep Unlearn (2024); docs/methods.md#original.
    """
    return lambda state, splits, key: state
