"""Console forms (Flask-WTF): every state-changing form carries a CSRF token."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    URL,
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

from app.models.client import CLIENT_ID_MAX
from app.registration.lifecycle import MAX_TOKEN_TTL_CEILING


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class ReasonForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500)])


class OptionalReasonForm(FlaskForm):
    reason = StringField("Reason (optional)", validators=[Optional(), Length(max=500)])


class BulkSelectForm(FlaskForm):
    """Clients ticked on a list page and what to do with them. It only leads to the
    confirmation page (``app.console.bulk``), which changes nothing."""
    action = HiddenField(validators=[AnyOf(("deny", "suspend"), "Choose deny or suspend.")])
    client_id = SelectMultipleField(validate_choice=False,
                                    validators=[DataRequired("Select at least one client.")])
    back = HiddenField()


class BulkConfirmForm(FlaskForm):
    """The confirmation page's form: exactly the clients it named, and the reason."""
    action = HiddenField(validators=[DataRequired()])
    client_ids = HiddenField(validators=[DataRequired()])
    back = HiddenField()
    reason = StringField("Reason (recorded for each client)", validators=[DataRequired(), Length(max=500)])


class BulkMatchForm(FlaskForm):
    """Every client a list page matches (``match``: which page and its filter, or a group of the
    queue) and what to do with them; like ``BulkSelectForm`` it only leads to the confirmation."""
    action = HiddenField(validators=[AnyOf(("deny", "suspend"), "Choose deny or suspend.")])
    match = HiddenField(validators=[DataRequired("Say which clients."), Length(max=2000)])
    back = HiddenField()


class BulkMatchConfirmForm(BulkMatchForm):
    """The confirmation of a match: the clients it named, as their count and digest, so that the
    action is refused if the match changed since (``app.console.bulk``)."""
    count = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    digest = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])
    reason = StringField("Reason (recorded for each client)", validators=[DataRequired(), Length(max=500)])


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


NO_METHOD = ("", "— choose how the client was proofed —")


class ProofingFields:
    """The proofing an approval records; the administrator always chooses the method (the
    first choice, ``NO_METHOD``, is none). Choices come from the scope catalogue (the view)."""

    assurance_level = SelectField("Assurance level of this proofing", coerce=int,
                                  validators=[InputRequired()])
    proofing_method = SelectField("Proofing method", validators=[DataRequired(
        message="Choose how the client was proofed.")])
    evidence = StringField("Evidence reference (ticket, document, contact)",
                           validators=[Optional(), Length(max=500)])


class ApprovalForm(ProofingFields, FlaskForm):
    """Choices (proofing methods, scopes) come from the scope catalogue, set by the view. The
    ``refresh`` button re-renders the form with everything typed (another assurance level
    offers other scopes) and approves nothing."""

    # The version of the registration on screen: an approval of an older one is refused.
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    owner = StringField("Owner (an accountable person or team)",
                        validators=[DataRequired(), Length(max=255)])
    purpose = TextAreaField("Purpose", validators=[DataRequired(), Length(max=2000)])
    scopes = CheckboxesField("Approved scopes")
    other_scopes = StringField("Scopes to approve (space-separated)",
                               validators=[Optional(), Length(max=1000)])
    audiences = TextAreaField("Audiences (one URL per line)", validators=[DataRequired()])
    serves = TextAreaField("Relying service for (resource URLs, one per line; it may then introspect "
                           "tokens addressed to them)", validators=[Optional()])
    max_token_ttl = IntegerField("Maximum token lifetime (seconds)",
                                 validators=[InputRequired(), NumberRange(min=1, max=MAX_TOKEN_TTL_CEILING)])
    expires_at = DateField("Approval expires on", validators=[DataRequired()])
    review_at = DateField("Review on", validators=[DataRequired()])
    confirm_sensitive = BooleanField("I confirm the sensitive scopes checked above")

    def audience_list(self) -> list[str]:
        return _lines(self.audiences.data)

    def serves_list(self) -> list[str]:
        return _lines(self.serves.data)


class RenewForm(ProofingFields, FlaskForm):
    """The review of an approval: the proofing again and the next review date."""

    review_at = DateField("Next review on", validators=[DataRequired()])
    expires_at = DateField("Approval expires on (empty: unchanged)", validators=[Optional()])


class EditApprovalForm(FlaskForm):
    """Narrowing needs nothing more; widening needs the proofing fields (checked by the service)."""

    scopes = CheckboxesField("Scopes it may have")
    audiences = TextAreaField("Audiences it may have (one URL per line)", validators=[DataRequired()])
    max_token_ttl = IntegerField("Maximum token lifetime (seconds) it may have",
                                 validators=[InputRequired(), NumberRange(min=1, max=MAX_TOKEN_TTL_CEILING)])
    expires_at = DateField("Approval expires on", validators=[DataRequired()])
    assurance_level = SelectField("Widening only: assurance level of the new proofing",
                                  coerce=lambda value: None if value in ("", None) else int(value))
    proofing_method = SelectField("Widening only: proofing method", validators=[Optional()])
    evidence = StringField("Widening only: evidence reference", validators=[Optional(), Length(max=500)])
    confirm_sensitive = BooleanField("I confirm the sensitive scopes it gets")

    def audience_list(self) -> list[str]:
        return _lines(self.audiences.data)


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class TrustedIssuerForm(FlaskForm):
    """What every kind of trusted issuer has (``app.trust.issuers``); a kind's form adds its own
    fields, named as the service's arguments (``fields()``)."""
    issuer = StringField("Issuer", validators=[DataRequired(), Length(max=255)])
    jwks_uri = StringField("JWKS URL", validators=[Optional(), URL(require_tld=False)])
    jwks = TextAreaField("Or the JWKS itself (JSON)", validators=[Optional()])
    algorithms = StringField("Algorithms (comma-separated; empty: from the keys)")
    issuer_label = "Issuer"
    algorithms_label = "Algorithms (comma-separated; empty: from the keys)"
    own: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.issuer.label.text = self.issuer_label
        self.algorithms.label.text = self.algorithms_label

    def fields(self) -> dict:
        return {name: getattr(self, name).data for name in self.own}


class PublisherForm(TrustedIssuerForm):
    assurance_level = SelectField("Assurance level of its statements", coerce=int)
    require_jti = BooleanField("Accept each statement once (statements must carry a jti)")
    issuer_label = "Issuer (the statement's iss)"
    own = ("assurance_level", "require_jti")


class WorkloadIssuerForm(TrustedIssuerForm):
    audience = StringField("Audience the tokens must carry", validators=[DataRequired(), Length(max=255)])
    subject_pattern = StringField("Subject pattern (optional, e.g. spiffe://example.org/*)",
                                  validators=[Optional(), Length(max=255)])
    issuer_label = "Issuer (the workload token's iss)"
    algorithms_label = "Algorithms (comma-separated; empty: from the keys, or ES256, RS256 with a JWKS URL)"
    own = ("audience", "subject_pattern")


class DocumentPublisherForm(FlaskForm):
    """A trusted publisher of client ID metadata documents: the prefix and the ceiling within
    which its documents are approved by policy (``app.trust.document_publishers.add``). The
    proofing method is chosen, never preselected; choices come from the scope catalogue."""

    url_prefix = StringField("Documents under (an https origin and a path ending in /)",
                         validators=[DataRequired(), Length(max=512)])
    owner = StringField("Owner (an accountable person or team)", validators=[DataRequired(), Length(max=255)])
    scopes = StringField("Scopes at most (space-separated)", validators=[DataRequired(), Length(max=1000)])
    audiences = TextAreaField("Audiences at most (one URL per line)", validators=[DataRequired()])
    approval_days = IntegerField("Approved for (days)", validators=[InputRequired(), NumberRange(min=1)])
    assurance_level = SelectField("Assurance level", coerce=int, validators=[InputRequired()])
    proofing_method = SelectField("How you proofed the publisher", validators=[DataRequired(
        message="Choose how you proofed the publisher.")])
    confirm_sensitive = BooleanField("Every document under this prefix may have the sensitive scopes named")

    def audience_list(self) -> list[str]:
        return _lines(self.audiences.data)


class AuditSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a search (GET) changes nothing

    client_id = StringField("Client ID", validators=[Optional(), Length(max=CLIENT_ID_MAX)])
    actor = StringField("Actor", validators=[Optional(), Length(max=255)])
    event_type = StringField("Event type", validators=[Optional(), Length(max=64)])
    since = DateField("From (date, UTC)", validators=[Optional()])
    until = DateField("Until (date, UTC, inclusive)", validators=[Optional()])


class InventoryFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a filter (GET) changes nothing

    q = StringField("Search (name, owner, client ID, software ID, publisher, address, host)",
                    validators=[Optional(), Length(max=200)])
    status = SelectField("Status", default="")
    assurance = SelectField("Assurance level", default="")
    flag = SelectField("Needs attention", default="")
    last_used = SelectField("Last token", default="")
    unused_days = IntegerField("Unused for (days)", default=30,
                               validators=[Optional(), NumberRange(min=1, max=3650)])
    sort = SelectField("Sort by", default="newest")
    page = IntegerField(widget=HiddenInput(), default=1, validators=[Optional(), NumberRange(min=1)])
