"""SalUn: gradient-saliency mask on the forget loss, then SRL with masked gradients."""

import dataclasses

from jaxmu import losses
from jaxmu.methods import _checks
from jaxmu.methods._core import COMMON, LR, MOMENTUM, UNIT, WD, register
from jaxmu.models._select import ALL
from jaxmu.stages import accumulate_gradients, finetune, sequence, sgd
from jaxmu.transforms import mask_by_gradient_saliency, scale_by_mask

_DEAD = dict(dead=True)


@register(
    "salun",
    defaults=dict(epochs=10, batch_size=256, lr=0.01, momentum=0.0, weight_decay=0.0,
                  threshold=0.5, mask_lr=0.01, mask_momentum=0.9, mask_weight_decay=5e-4),
    space={**COMMON, "threshold": UNIT,
           "mask_lr": dataclasses.replace(LR, **_DEAD),
           "mask_momentum": dataclasses.replace(MOMENTUM, **_DEAD),
           "mask_weight_decay": dataclasses.replace(WD, **_DEAD)},
    summary="mask = global top-threshold fraction of |sum grad(-CE_f)| (eval mode); SRL with "
            "gradients x mask, then coupled wd and momentum; SGD",
    paper="Deep Unlearn (004), after Fan et al. SalUn (Unlearn-Saliency)",
    section="methods-spec §5.6",
)
def salun(epochs, batch_size, lr, momentum, weight_decay, threshold, mask_lr, mask_momentum,
          mask_weight_decay):
    """Saliency unlearning.

    1. Mask (eval-mode BatchNorm): sum over the forget batches (``batch_size``) of the
       gradient of ``-CE_f`` (batch mean), take ``|sum|``, and mark trainable the
       ``floor(threshold * N)`` entries with the largest magnitude among *all* N parameter
       entries (global ranking; BatchNorm/LayerNorm scales and biases included, model state
       excluded). ``threshold`` is the fraction of entries kept trainable.
    2. E epochs of SRL (methods-spec §5.3: CE on a mixed D_r/D_f stream with uniformly random
       forget labels, train-mode BatchNorm), with SGD whose direction is
       ``chain(scale_by_mask, add_decayed_weights, trace)``: the gradient is multiplied by
       the mask *before* coupled weight decay and momentum.

    Weight decay is therefore not masked: with ``weight_decay > 0`` a masked entry still
    shrinks by ``lr * wd * theta`` per step (and, with momentum, through the decay terms
    accumulated in its momentum buffer); with ``weight_decay = 0`` its buffer stays 0 and
    the entry is bit-identical. This is the reference's (PyTorch) behaviour and jaxmu keeps
    it on purpose, by the order of the chain; the defaults (momentum 0, wd 0) freeze masked
    entries exactly.

    Differences from the reference:
        * ``mask_lr``, ``mask_momentum``, ``mask_weight_decay`` configure an optimiser the
          reference builds but never uses (methods-spec §5.6, §10.6). They are accepted,
          ignored, and marked dead in the search space.
        * Random labels come from the method key; batches are full (the last batch of an
          epoch, and of the mask probe, wraps around; the probe reweights a wrapped batch
          so the sum covers each forget example once).

    References:
        Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency
        (2024); Cadet et al., Deep Unlearn (2024); methods-spec §5.6, §10.6.
    """
    del mask_lr, mask_momentum, mask_weight_decay  # dead in the reference
    _checks.unit("threshold", threshold)
    batch_size = _checks.batch("batch_size", batch_size)
    tx = sgd(_checks.non_negative("momentum", momentum),
             _checks.non_negative("weight_decay", weight_decay),
             scale_by_mask("salun", 1.0, 0.0))
    return sequence(
        accumulate_gradients("salun_grad", losses.neg(losses.ce()), "forget",
                             batch_size=batch_size, bn="eval"),
        mask_by_gradient_saliency("salun_grad", "salun", threshold, largest=True, select=ALL,
                                  scope="global"),
        finetune(losses.ce(), tx, lr=_checks.positive("lr", lr), split="train",
                 epochs=_checks.positive("epochs", epochs), batch_size=batch_size,
                 relabel_forget=True),
    )
