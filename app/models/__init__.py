"""SQLAlchemy models, one module per aggregate."""
from app.models.admin import Admin, LoginFailure
from app.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from app.models.client import Approval, Client, InitialAccessToken
from app.models.document import ClientDocument, DocumentPublisher
from app.models.grant import AccessRequest, AuthorizationCode, Consent, RefreshToken
from app.models.key import SigningKey
from app.models.person import Person
from app.models.token import AssertionJti, IssuedToken, Task
from app.models.trust import Publisher, StatementJti, WorkloadIssuer

__all__ = ["AccessRequest", "AuthorizationCode", "Consent", "RefreshToken", "Admin", "AssertionJti", "AuditCheckpoint", "AuditEvent", "AuditHead", "Approval", "Client", "ClientDocument", "DocumentPublisher",
           "InitialAccessToken", "IssuedToken", "LoginFailure", "Person", "Publisher", "SigningKey", "StatementJti",
           "Task", "WorkloadIssuer"]
