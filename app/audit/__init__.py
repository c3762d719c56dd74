"""The audit trail: ``record()`` in the same transaction as the change it describes
(``append_locked()``: the same, with Core statements, for the token endpoint's group commit)."""
from .trail import append_locked, export_jsonl, lock_head, record, values, verify

__all__ = ["record", "values", "lock_head", "append_locked", "verify", "export_jsonl"]
