"""The audit trail: ``record()`` in the same transaction as the change it describes."""
from .trail import export_jsonl, record, verify

__all__ = ["record", "verify", "export_jsonl"]
