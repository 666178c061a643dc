"""EU-k: exact unlearning of the last k blocks (re-initialise them, then CF-k's fine-tune)."""

from __future__ import annotations

from jaxmu.methods._core import HP, register
from jaxmu.methods.cf_k import CFK_DEFAULTS, CFK_SPACE, check_last_k, last_k_finetune
from jaxmu.models._select import last_k_blocks
from jaxmu.stages._loops import sequence
from jaxmu.transforms import reinit


@register(
    "eu_k",
    defaults=dict(CFK_DEFAULTS, training_epoch_factor=10, augment=True, reset_bn_stats=True),
    space=dict(CFK_SPACE, training_epoch_factor=HP("int", 1, 10, dead=True)),
    summary="re-initialise the last k blocks + head (BN statistics reset); then CF-k's "
            "proximal SGD on augmented retain, anchored at the fresh weights",
    paper="Deep Unlearn (004), after Goel et al.", section="methods-spec §5.12",
)
def eu_k(epochs, batch_size, num_blocks, lr, sgda_learning_rate, sgda_decay_rate,
         sgda_weight_decay, momentum, bn, training_epoch_factor, augment, reset_bn_stats):
    """Exact unlearning of the last k blocks (EU-k).

    1. Re-initialise the last ``num_blocks`` blocks and the classifier with a fresh draw of
       the model's own initialiser (from the method key); with ``reset_bn_stats`` (default)
       the BatchNorm running statistics of those blocks are reset to mean 0 / var 1.
    2. CF-k's fine-tune (see ``cf_k``): only those blocks + classifier train, SGD(``lr``,
       momentum 0, wd 0) + ``(sgda_weight_decay / 2) |theta - theta_reinit|^2`` (anchored at
       the re-initialised weights), 0-indexed step decay, eval-mode BN by default, on the
       **augmented** retain set (random crop + flip, ``augment=True``).

    Differences from the reference:
        * The reference re-initialises with its own ``init_weights`` (Conv2d kaiming-uniform
          fan_out, Linear xavier-uniform, BN gamma=1/beta=0) and skips LayerNorm and
          attention biases (TinyViT); jaxmu re-draws every selected leaf from the model's
          own initialiser, so TinyViT blocks are fully re-initialised.
        * The reference keeps the old BN running statistics of the re-initialised blocks
          (and, in eval mode, never updates them: stale statistics of the old weights);
          jaxmu resets them (``reset_bn_stats=False`` restores the reference).
        * ``sgda_learning_rate``, ``momentum`` and ``training_epoch_factor`` are searched
          by the reference but unused; kept in the space, marked dead, ignored.

    References:
        Goel et al., Towards Adversarial Evaluation of Machine Unlearning (2022); Cadet et
        al., Deep Unlearn (2024); methods-spec §5.12, §10.5.
    """
    check_last_k(epochs, batch_size, num_blocks, lr, sgda_decay_rate, sgda_weight_decay, bn)
    return sequence(
        reinit(last_k_blocks(int(num_blocks)), init="model", reset_batch_stats=reset_bn_stats),
        last_k_finetune(epochs, batch_size, num_blocks, lr, sgda_decay_rate, sgda_weight_decay,
                        bn, augment=augment),
    )
