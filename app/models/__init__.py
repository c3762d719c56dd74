"""SQLAlchemy models, one module per aggregate."""
from .admin import Admin, LoginFailure
from .audit import AuditCheckpoint, AuditEvent, AuditHead
from .client import Approval, Client
from .key import SigningKey
from .publisher import InitialAccessToken, Publisher, StatementJti, WorkloadIssuer
from .token import AssertionJti, IssuedToken, Task

__all__ = ["Admin", "AuditEvent", "AuditHead", "Approval", "Client", "SigningKey", "Publisher",
           "WorkloadIssuer", "StatementJti", "LoginFailure", "InitialAccessToken", "AssertionJti", "IssuedToken", "Task"]
