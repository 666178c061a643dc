"""Shape-annotated array aliases for the public metric signatures (jaxtyping).

Defined as aliases so that the shape strings live outside annotations.
"""

from jaxtyping import ArrayLike, Bool, Float

Logits = Float[ArrayLike, "*models n k"]  # logits, leading model axes allowed
Logits2D = Float[ArrayLike, "n k"]  # one model's logits on one split
PerExample = Float[ArrayLike, "*models n"]  # per-(model, example) values
Confs = Float[ArrayLike, "models examples"]  # population x forget-example confidences
Stats = Float[ArrayLike, "models examples *aug"]  # attack statistics, optional augmentations
Mask = Bool[ArrayLike, "models examples"]  # per-(model, example) membership / observation
