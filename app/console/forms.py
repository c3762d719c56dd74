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
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

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


class DenyGroupForm(FlaskForm):
    client_ids = HiddenField(validators=[DataRequired()])
    reason = StringField("Reason for denying this group", validators=[DataRequired(), Length(max=500)])


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AssuranceForm(FlaskForm):
    """Choosing the assurance level first decides which scopes the approval form offers."""

    class Meta:
        csrf = False  # a GET that only re-renders the page

    level = SelectField("Assurance level of this proofing", coerce=int)


class ApprovalForm(FlaskForm):
    """Choices (proofing methods, scopes) come from the scope catalogue, set by the view."""

    assurance_level = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    # The version of the registration on screen: an approval of an older one is refused.
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    proofing_method = SelectField("Proofing method")
    evidence = StringField("Evidence reference (ticket, document, contact)",
                           validators=[Optional(), Length(max=500)])
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

    def audience_list(self) -> list[str]:
        return _lines(self.audiences.data)

    def serves_list(self) -> list[str]:
        return _lines(self.serves.data)


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


class AuditSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a search (GET) changes nothing

    client_id = StringField("Client ID", validators=[Optional(), Length(max=64)])
    actor = StringField("Actor", validators=[Optional(), Length(max=255)])
    event_type = StringField("Event type", validators=[Optional(), Length(max=64)])
    since = DateField("From (date, UTC)", validators=[Optional()])
    until = DateField("Until (date, UTC, inclusive)", validators=[Optional()])


class InventoryFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a filter (GET) changes nothing

    status = SelectField("Status", default="")
    flag = SelectField("Needs attention", default="")
    unused_days = IntegerField("Unused for (days)", default=30,
                               validators=[Optional(), NumberRange(min=1, max=3650)])
