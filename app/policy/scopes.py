"""Assurance levels and the optional scope catalogue (``config/scopes.toml``).

A scope needs a minimum assurance level; an approval at a lower level cannot
grant it. With ``restrict = true`` only catalogued scope names may be requested
or approved; otherwise any name may be requested and the approval decides.
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
    return Catalogue(levels=dict(sorted(levels.items())), restrict=bool(cat.get("restrict", False)),
                     default_assurance=int(cat.get("default_assurance", min(levels))),
                     proofing_methods=tuple(cat.get("proofing_methods", ())),
                     scopes=dict(data.get("scopes", {})))
