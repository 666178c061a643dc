"""Names that command lines offer as choices, importable without jax.

A CLI builds its parser (and answers ``--help``) from these tuples before it imports
anything heavy; :data:`jaxmu.models.MODELS` and :data:`jaxmu.data.SCENARIOS` are these same
objects. This module must import nothing beyond the standard library.
"""

MODELS = ("mlp", "small_cnn", "resnet18", "resnet18_cifar", "tinyvit")
"""Model names accepted by :func:`jaxmu.models.get_model`."""

SCENARIOS = ("random", "classwise:<c>[,<c>...]", "red:<size>", "label_skew:<class>")
"""Forget-set scenario strings accepted by :func:`jaxmu.data.scenario_splits`."""
