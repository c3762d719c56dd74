"""SQLAlchemy models, one module per aggregate."""
from .admin import Admin
from .audit import AuditEvent, AuditHead
from .client import Approval, Client
from .key import SigningKey
from .publisher import InitialAccessToken, Publisher, WorkloadIssuer
from .token import AssertionJti, IssuedToken, Task

__all__ = ["Admin", "AuditEvent", "AuditHead", "Approval", "Client", "SigningKey", "Publisher",
           "WorkloadIssuer", "InitialAccessToken", "AssertionJti", "IssuedToken", "Task"]
