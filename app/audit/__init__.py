"""The audit trail: ``record()`` in the same transaction as the change it describes
(``append()``: the same, written at once with Core statements, for the hot path)."""
from .trail import append, export_jsonl, record, verify

__all__ = ["record", "append", "verify", "export_jsonl"]
