"""SQLAlchemy models, one module per aggregate."""
from app.models.admin import Admin, LoginFailure
from app.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from app.models.client import Approval, Client, InitialAccessToken
from app.models.key import SigningKey
from app.models.token import AssertionJti, IssuedToken, Task
from app.models.trust import Publisher, StatementJti, WorkloadIssuer

__all__ = ["Admin", "AssertionJti", "AuditCheckpoint", "AuditEvent", "AuditHead", "Approval", "Client",
           "InitialAccessToken", "IssuedToken", "LoginFailure", "Publisher", "SigningKey", "StatementJti",
           "Task", "WorkloadIssuer"]
