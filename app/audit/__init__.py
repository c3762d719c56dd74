"""The audit trail: ``record()`` in the same transaction as the change it describes; the
sequencer seals what was recorded into a hash chain and signs checkpoints of it."""
from .trail import export_jsonl, record, record_values, values, verify

__all__ = ["record", "record_values", "values", "verify", "export_jsonl"]
