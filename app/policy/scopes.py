"""Assurance levels and the optional scope catalogue (``config/scopes.toml``).

A scope needs a minimum assurance level; an approval at a lower level cannot
grant it. With ``restrict = true`` only catalogued scope names may be requested
or approved; otherwise any name may be requested and the approval decides.

A catalogued scope may also say ``description`` (shown to the approver), ``default = true``
(a safe default: the approval form checks it when the client requested it; nothing else is
checked for the approver) or ``sensitive = true`` (never checked in advance, and approved
only with an explicit confirmation). ``[catalogue] evidence_methods`` names the proofing
methods that claim evidence, and so need an evidence reference.
"""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flask import current_app

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent.parent.parent / "config" / "scopes.toml"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")


@dataclass(frozen=True)
class Catalogue:
    levels: dict[int, dict]
    restrict: bool
    default_assurance: int
    proofing_methods: tuple[str, ...]
    scopes: dict[str, dict]
    evidence_methods: tuple[str, ...] = ()

    def description(self, scope: str) -> str:
        return str(self.scopes.get(scope, {}).get("description", ""))

    def is_default(self, scope: str) -> bool:
        return self.scopes.get(scope, {}).get("default") is True

    def sensitive(self, scopes) -> list[str]:
        """The scopes of ``scopes`` the catalogue marks sensitive."""
        return [s for s in scopes if self.scopes.get(s, {}).get("sensitive") is True]

    def needed_level(self, scope: str) -> int:
        return int(self.scopes.get(scope, {}).get("assurance", self.default_assurance))

    def unknown(self, scopes) -> list[str]:
        """Scope names the catalogue does not allow (none when it is not restrictive)."""
        return [s for s in scopes if self.restrict and s not in self.scopes]

    def above(self, scopes, level: int) -> list[str]:
        """Scopes that need more assurance than ``level``."""
        return [s for s in scopes if self.needed_level(s) > level]


def current() -> Catalogue:
    return load(current_app.config.get("SCOPES_FILE") or str(SHIPPED))


@lru_cache(maxsize=8)
def load(path: str) -> Catalogue:
    data = tomllib.loads(Path(path).read_text())
    levels = {int(k): v for k, v in data.get("levels", {}).items()}
    if not levels:
        raise ValueError(f"{path}: no assurance [levels] defined")
    cat = data.get("catalogue", {})
    scopes = dict(data.get("scopes", {}))
    for name, entry in scopes.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: [scopes.{name}] must be a table")  # noqa: TRY004 (a bad file)
        for flag in ("default", "sensitive"):
            if not isinstance(entry.get(flag, False), bool):
                raise ValueError(f"{path}: [scopes.{name}] {flag} must be true or false")  # noqa: TRY004
        if entry.get("default") and entry.get("sensitive"):
            raise ValueError(f"{path}: [scopes.{name}] cannot be both a default and sensitive")
    methods = tuple(cat.get("proofing_methods", ()))
    evidence = tuple(cat.get("evidence_methods", ()))
    if unknown := [m for m in evidence if m not in methods]:
        raise ValueError(f"{path}: evidence_methods not among proofing_methods: {', '.join(unknown)}")
    return Catalogue(levels=dict(sorted(levels.items())), restrict=bool(cat.get("restrict", False)),
                     default_assurance=int(cat.get("default_assurance", min(levels))),
                     proofing_methods=methods, scopes=scopes, evidence_methods=evidence)
