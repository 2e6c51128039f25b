"""The plan as people read it: one line per object and per changed field, a summary, secrets scrubbed.

Rendered plans show every secret as ``***``; ``scrub`` also covers error messages, which may echo request bodies.
"""

from __future__ import annotations

from lakehouse_ingest.provisioning.diff import SHOWN_SECRET
from lakehouse_ingest.provisioning.plan import ProvisionPlan


def render_plan(plan: ProvisionPlan) -> list[str]:
    """The plan as lines: one per object (``create`` / ``update`` / ``unchanged``), then one per changed field."""
    lines = []
    for change in plan.changes:
        suffix = f" ({change.object_id})" if change.object_id else ""
        lines.append(f"{plan.source}: {change.kind} {change.name!r}: {change.action}{suffix}")
        for item in change.fields:
            if change.action == "create":
                lines.append(f"    {item.path}: {item.after}")
            else:
                lines.append(f"    {item.path}: {item.before} -> {item.after}")
    return lines


def summary(plans: list[ProvisionPlan]) -> str:
    """``3 to create, 1 to update, 2 unchanged``."""
    counts = {"create": 0, "update": 0, "unchanged": 0}
    for plan in plans:
        for change in plan.changes:
            counts[change.action] += 1
    return f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every known secret value replaced by ``***`` (error messages may echo request bodies)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, SHOWN_SECRET)
    return text
