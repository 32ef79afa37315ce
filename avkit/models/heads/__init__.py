"""Heads, registered by kind: ``contrastive``, ``classify``, ``distill``, ``localization`` (``list_heads()``).

Importing this package registers the built-ins; a new head is one module with
a ``@register_head("name")`` class (docs/extending.md).
"""

from avkit.models.heads import classify, contrastive, distill, localization  # noqa: F401  (registers the built-ins)
from avkit.models.heads.base import (
    HEADS,
    Evaluator,
    Head,
    HeadContext,
    TowerInfo,
    create_head,
    list_heads,
    register_head,
)

__all__ = ["HEADS", "Evaluator", "Head", "HeadContext", "TowerInfo", "create_head", "list_heads", "register_head"]
