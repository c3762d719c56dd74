"""Names that look like other names: mixed scripts, confusable characters, and one comparable
form ("skeleton") of a name, so a reviewer sees a registration that imitates a verified one.

The Unicode data (scripts, and the confusables of Unicode TR39) come from
``confusable_homoglyphs``; nothing here is a table written by hand.
"""
from __future__ import annotations

import unicodedata

from confusable_homoglyphs import confusables

LATIN = ["latin"]


def skeleton(text: str | None) -> str:
    """A form of ``text`` two look-alike names share: NFKC (so full-width and compatibility
    forms fold), each character that TR39 lists as confusable with a Latin one replaced by
    it, then case-folded. ``"Асme"`` (Cyrillic А and с) and ``"acme"`` have one skeleton."""
    text = unicodedata.normalize("NFKC", text or "")
    for found in confusables.is_confusable(text, greedy=True, preferred_aliases=LATIN) or []:
        text = text.replace(found["character"], found["homoglyphs"][0]["c"])
    return text.casefold().strip()


def warnings(name: str | None) -> list[str]:
    """What a reviewer should know about how ``name`` reads: several scripts in one name, and
    the characters that imitate another script's."""
    if not name:
        return []
    notes = []
    if confusables.is_mixed_script(name):
        notes.append("mixed scripts in the name")
        found = confusables.is_confusable(name, greedy=True, preferred_aliases=LATIN) or []
        if found:
            shown = ", ".join(f"{f['character']!r} ({f['alias'].title()}) looks like {f['homoglyphs'][0]['c']!r}"
                              for f in found[:5])
            notes.append(f"confusable characters in the name: {shown}")
    return notes
