"""Decisions against the approval record: requested scopes and audiences within it."""
from __future__ import annotations

from app.policy.rules import Decision
from app.support import resources
from app.support.echo import safe_echo


def within_approval(*, approved_scopes: list[str], approved_audiences: list[str],
                    scopes: list[str] | None, audiences: list[str] | None) -> Decision:
    """RFC 6749 §3.3 and RFC 8707 §2: what was asked must be inside the approval.

    No scope asked -> the approved scopes (the approval is the client's default, never more);
    no audience asked -> the approved audiences. Audiences compare as resource identifiers
    (``app.support.resources``) and are granted in the approval's spelling."""
    if scopes:
        extra = sorted(set(scopes) - set(approved_scopes))
        if extra:
            return Decision(False, f"scope {safe_echo(' '.join(extra))} is not in the client's approval "
                                   f"({' '.join(approved_scopes)})", rule="approval", error="invalid_scope")
    if audiences:
        audiences, extra = resources.match(audiences, approved_audiences)
        if extra:
            return Decision(False, f"resource {safe_echo(' '.join(extra), 200)} is not in the client's approval, "
                                   f"which holds {safe_echo(' '.join(approved_audiences), 400) or 'no resource'}",
                            rule="approval", error="invalid_target")
    granted = {"scopes": sorted(set(scopes)) if scopes else list(approved_scopes),
               "audiences": sorted(set(audiences)) if audiences else list(approved_audiences)}
    return Decision(True, "within the approval", rule="approval", granted=granted)
