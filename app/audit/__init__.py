"""The audit trail: ``record()`` in the same transaction as the change it describes; the
sequencer seals what was recorded into a hash chain and signs checkpoints of it."""
from app.audit.trail import append, export_jsonl, record, values, verify

__all__ = ["record", "append", "values", "verify", "export_jsonl"]
