"""Heads, registered by kind: ``contrastive``, ``classify``, ``distill``, ``localization``,
``image_decoder``, ``regress_embedding``, ``caption``, ``unit_vocoder`` (``list_heads()``).

Importing this package registers the built-ins; a new head is one module with
a ``@register_head("name")`` class (docs/extending.md).
"""

from avkit.models.heads import (  # noqa: F401  (registers the built-ins)
    caption,
    classify,
    contrastive,
    distill,
    image_decoder,
    localization,
    regress_embedding,
    unit_vocoder,
)
from avkit.models.heads.base import (
    HEADS,
    Evaluator,
    Head,
    HeadContext,
    TowerInfo,
    borrow,
    create_head,
    list_heads,
    register_head,
)

__all__ = ["HEADS", "Evaluator", "Head", "HeadContext", "TowerInfo", "borrow", "create_head", "list_heads", "register_head"]
