"""Weight edits (stages), saliency masks and optax gradient transforms reading ``aux``."""

from jaxmu.transforms._edits import (
    INITS,
    gaussian_deviation,
    kaiming_normal_fan_out,
    mask_by_gradient_saliency,
    prune_l1_and_reinit,
    quantize_round_trip,
    reinit,
    saliency_mask,
    transpose_conv,
    uniform_fan_in,
)
from jaxmu.transforms._grad import project_out, project_out_vector, scale_by_mask

__all__ = [
    "INITS",
    "gaussian_deviation",
    "kaiming_normal_fan_out",
    "mask_by_gradient_saliency",
    "project_out",
    "project_out_vector",
    "prune_l1_and_reinit",
    "quantize_round_trip",
    "reinit",
    "saliency_mask",
    "scale_by_mask",
    "transpose_conv",
    "uniform_fan_in",
]
