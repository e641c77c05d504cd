"""Request and response bodies of the HTTP API (Pydantic v2), each with an example for /docs.

Requests convert to the core's `Item` with `to_item` (through `build_item`); responses are
built from the core's dataclasses with the `*_payload` and `from_core` helpers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from app.feedback import FeedbackRecord
from app.items import Item, ThreadMessage, build_item, parse_datetime
from app.model import Contribution, Explanation, Reason, Verdict
from app.service import ReloadResult
from app.settings import Settings

MAX_TEXT_CHARS = Settings.model_fields["max_text_chars"].default
MAX_BATCH_ITEMS = Settings.model_fields["max_batch_items"].default
MAX_THREAD_MESSAGES = 500
Label = Literal["genuine", "sales_pitch", "spam"]
Source = Literal["model", "allow_list", "deny_list"]


def _datetime(value: Any, info: ValidationInfo) -> datetime | None:
    return parse_datetime(value, info.field_name or "date-time")


DateTimeIn = Annotated[
    datetime | None,
    BeforeValidator(_datetime),
    Field(description="ISO 8601; a time without a zone is taken as UTC", examples=["2025-03-04T09:15:00Z"]),
]
Kind = Annotated[Literal["invite", "message"], BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)]
Count = Annotated[int | None, Field(ge=0, le=1_000_000_000, strict=True)]
Flag = Annotated[bool | None, Field(strict=True)]

EXAMPLE_ITEM: dict[str, Any] = {
    "id": "msg-1042",
    "kind": "message",
    "text": "Hi Dana, thanks for connecting! We help SaaS teams triple their pipeline. Do you have 15 minutes on Thursday?",
    "sender": {
        "name": "Alex Morgan",
        "headline": "Growth Partner at LeadRocket",
        "profile_url": "https://www.linkedin.com/in/alex-morgan-growth",
        "connections": 2300,
        "mutual_connections": 0,
        "has_photo": True,
        "account_age_days": 900,
    },
    "recipient": {"name": "Dana Okafor"},
    "sent_at": "2025-03-04T09:15:00Z",
    "connected_at": "2025-03-04T08:50:00Z",
    "thread": [],
}
EXAMPLE_REASON: dict[str, Any] = {
    "feature": "signal__meeting_request",
    "description": "asks for a call or a meeting slot ('15 minutes', 'quick call', a booking link)",
    "contribution": 1.84,
    "spans": [{"start": 85, "end": 95, "text": "15 minutes"}],
}
EXAMPLE_CONTRIBUTION: dict[str, Any] = {
    "feature": "signal__meeting_request",
    "description": "asks for a call or a meeting slot ('15 minutes', 'quick call', a booking link)",
    "value": 1.0,
    "contribution": 1.84,
}
EXAMPLE_VERDICT: dict[str, Any] = {
    "id": "msg-1042",
    "verdict": "sales_pitch",
    "confidence": 0.93,
    "scores": {"genuine": 0.05, "sales_pitch": 0.93, "spam": 0.02},
    "needs_review": False,
    "reasons": [
        EXAMPLE_REASON,
        {
            "feature": "text:we help saas teams",
            "description": "the words 'We help SaaS teams'",
            "contribution": 0.77,
            "spans": [{"start": 34, "end": 52, "text": "We help SaaS teams"}],
        },
    ],
    "summary": "Looks like a sales pitch (93%): asks for a call or a meeting slot; the words 'We help SaaS teams'.",
    "model_version": "v20250301-120000-1a2b3c4d",
    "source": "model",
}


def examples(*values: Any) -> ConfigDict:
    """A schema's examples, shown in /docs (merged with the base class's configuration)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT_CHARS)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------
# The item
# --------------------------------------------------------------------------------------


class SenderIn(_In):
    """What is known about the sender; every field is optional."""

    model_config = examples(EXAMPLE_ITEM["sender"])

    name: str | None = Field(None, max_length=300)
    headline: str | None = Field(None, max_length=2_000)
    profile_url: str | None = Field(None, max_length=2_000, description="matched against the allow/deny lists")
    company: str | None = Field(None, max_length=300, description="matched against the allow/deny lists")
    connections: Count = None
    mutual_connections: Count = None
    has_photo: Flag = None
    account_age_days: Count = None


class RecipientIn(_In):
    model_config = examples({"name": "Dana Okafor"})

    name: str | None = Field(None, max_length=300)


class ThreadMessageIn(_In):
    """An earlier message of the same conversation (inbound = from this sender to the recipient)."""

    model_config = examples({"direction": "inbound", "text": "Hi Dana, any thoughts?", "sent_at": "2025-03-01T10:00:00Z"})

    direction: Literal["inbound", "outbound"]
    text: str = Field("", max_length=MAX_TEXT_CHARS)
    sent_at: DateTimeIn = None


class ItemIn(_In):
    """A received invite or message. Everything but `text` is optional; `text` may be empty for an invite."""

    model_config = examples(EXAMPLE_ITEM)

    id: str | None = Field(None, max_length=200, description="the caller's id, echoed back")
    kind: Kind = "message"
    text: str = Field(max_length=MAX_TEXT_CHARS, description=f"the note or message, up to {MAX_TEXT_CHARS:,} characters")
    sender: SenderIn | None = None
    recipient: RecipientIn | None = None
    sent_at: DateTimeIn = None
    connected_at: DateTimeIn = Field(None, description="when the two became connected (ISO 8601)")
    thread: list[ThreadMessageIn] = Field(
        default_factory=list, max_length=MAX_THREAD_MESSAGES, description="earlier messages of the conversation, oldest first"
    )
    thread_known: bool = Field(
        False, description="true when `thread` is the whole conversation so far (an empty thread then means a first message)"
    )
    prior_unanswered: Count = Field(None, description="overrides the count the thread implies")
    minutes_since_connected: Count = Field(None, description="overrides what connected_at and sent_at imply")
    is_connection: Flag = Field(None, description="the sender was one of the recipient's connections")
    owner_replied_after: Flag = Field(None, description="the recipient replied after this message")

    def to_item(self) -> Item:
        """The core's Item (via build_item). Raises ValueError naming the field."""
        thread = [ThreadMessage(m.direction, m.text, m.sent_at) for m in self.thread]
        try:
            return build_item(
                self.text,
                kind=self.kind,
                sender=self.sender.model_dump() if self.sender else None,
                recipient_name=self.recipient.name if self.recipient else None,
                sent_at=self.sent_at,
                connected_at=self.connected_at,
                thread=thread if thread or self.thread_known else None,
                prior_unanswered=self.prior_unanswered,
                minutes_since_connected=self.minutes_since_connected,
                is_connection=self.is_connection,
                owner_replied_after=self.owner_replied_after,
            )
        except OverflowError as exc:
            raise ValueError(f"sent_at/connected_at: {exc}") from None


class BatchIn(_In):
    model_config = examples({"items": [EXAMPLE_ITEM, {"kind": "invite", "text": ""}]})

    items: list[ItemIn] = Field(max_length=MAX_BATCH_ITEMS, description=f"up to {MAX_BATCH_ITEMS:,} items, answered in order")


# --------------------------------------------------------------------------------------
# Verdicts and explanations
# --------------------------------------------------------------------------------------


class SpanOut(_Out):
    """Characters [start, end) of the received text that produced an n-gram feature."""

    model_config = examples({"start": 33, "end": 40, "text": "We help"})

    start: int
    end: int
    text: str


class ReasonOut(_Out):
    """A piece of evidence for the verdict: a phrase of the text, a named signal or a fact of the conversation,
    with its share of the verdict class's decision value and where it is in the text.

    For an allow/deny list match, `contribution` is 1: the list decides outright.
    """

    model_config = examples(EXAMPLE_REASON)

    feature: str
    description: str
    contribution: float
    spans: list[SpanOut] = []


class ContributionOut(_Out):
    """One feature's exact share of a class's decision value: value * weight."""

    model_config = examples(EXAMPLE_CONTRIBUTION)

    feature: str
    description: str
    value: float
    contribution: float


class ScoresOut(_Out):
    """Class probabilities, summing to 1."""

    model_config = examples(EXAMPLE_VERDICT["scores"])

    genuine: float
    sales_pitch: float
    spam: float


class VerdictOut(_Out):
    model_config = examples(EXAMPLE_VERDICT)

    id: str | None = None
    verdict: Label
    confidence: float
    scores: ScoresOut
    needs_review: bool
    reasons: list[ReasonOut] = Field(description="the strongest evidence toward the verdict")
    summary: str
    model_version: str
    source: Source = Field(description="what decided: the model or an allow/deny list")


class BatchOut(_Out):
    model_config = examples({"count": 1, "items": [EXAMPLE_VERDICT]})

    count: int
    items: list[VerdictOut]


class ClassExplanationOut(_Out):
    """intercept + sum(contributions) == decision_value, exactly (up to float rounding)."""

    model_config = examples(
        {"label": "sales_pitch", "intercept": -0.41, "decision_value": 3.02, "contributions": [EXAMPLE_CONTRIBUTION]}
    )

    label: Label
    intercept: float
    decision_value: float
    contributions: list[ContributionOut] = Field(description="every non-zero contribution, largest magnitude first")


class ExplainOut(_Out):
    """The verdict and, for every class, the model's exact decomposition."""

    model_config = examples(
        {
            "verdict": EXAMPLE_VERDICT,
            "classes": [
                {
                    "label": "sales_pitch",
                    "intercept": -0.41,
                    "decision_value": 3.02,
                    "contributions": [EXAMPLE_CONTRIBUTION],
                }
            ],
        }
    )

    verdict: VerdictOut
    classes: list[ClassExplanationOut]


# The answers as plain dicts, in exactly the shapes above: the routes serialise these
# directly (cheaper than building model instances per request); the test suite checks
# every answer against the OpenAPI schema.


def reason_payload(r: Reason) -> dict[str, Any]:
    return {
        "feature": r.feature,
        "description": r.description,
        "contribution": float(r.contribution),
        "spans": [{"start": s.start, "end": s.end, "text": s.text} for s in r.spans],
    }


def verdict_payload(item_id: str | None, v: Verdict) -> dict[str, Any]:
    """A VerdictOut as a dict."""
    return {
        "id": item_id,
        "verdict": v.verdict,
        "confidence": v.confidence,
        "scores": {k: v.scores[k] for k in ("genuine", "sales_pitch", "spam")},
        "needs_review": v.needs_review,
        "reasons": [reason_payload(r) for r in v.reasons],
        "summary": v.summary,
        "model_version": v.model_version,
        "source": v.source,
    }


def contribution_payload(c: Contribution) -> dict[str, Any]:
    return {"feature": c.feature, "description": c.description, "value": c.value, "contribution": c.contribution}


def explain_payload(item_id: str | None, e: Explanation) -> dict[str, Any]:
    """An ExplainOut as a dict."""
    return {
        "verdict": verdict_payload(item_id, e.verdict),
        "classes": [
            {
                "label": c.label,
                "intercept": c.intercept,
                "decision_value": c.decision_value,
                "contributions": [contribution_payload(x) for x in c.contributions],
            }
            for c in e.classes
        ],
    }


# --------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------


class FeedbackIn(_In):
    """An item with its correct label and, optionally, the verdict it corrects."""

    model_config = examples({"item": EXAMPLE_ITEM, "label": "genuine", "corrects": "sales_pitch"})

    item: ItemIn
    label: Label = Field(description="the correct label")
    corrects: Label | None = Field(None, description="the verdict this feedback corrects")
    model_version: str | None = Field(None, max_length=200, description="the model that gave that verdict (default: serving)")


class FeedbackOut(_Out):
    model_config = examples(
        {
            "id": 17,
            "created_at": "2025-03-04T09:20:11.123456Z",
            "label": "genuine",
            "corrects": "sales_pitch",
            "model_version": "v20250301-120000-1a2b3c4d",
            "item_id": "msg-1042",
            "item": {"text": "Hi Dana, ...", "kind": "message", "sender_name": "Alex Morgan"},
        }
    )

    id: int
    created_at: datetime
    label: Label
    corrects: Label | None = None
    model_version: str | None = None
    item_id: str | None = None
    item: dict[str, Any] = Field(description="the item's fields as the model reads them (corpus columns)")
    request: dict[str, Any] | None = Field(None, description="the item as it was submitted")

    @classmethod
    def from_core(cls, r: FeedbackRecord) -> FeedbackOut:
        return cls(
            id=r.id,
            created_at=r.created_at,
            label=r.label,  # type: ignore[arg-type]
            corrects=r.corrects,  # type: ignore[arg-type]
            model_version=r.model_version,
            item_id=r.item_id,
            item=r.item,
            request=r.request,
        )


class FeedbackListOut(_Out):
    model_config = examples({"count": 0, "items": [], "next_after_id": None})

    count: int
    items: list[FeedbackOut]
    next_after_id: int | None = Field(None, description="pass as after_id for the next page; null when this page is the last")


# --------------------------------------------------------------------------------------
# Model, health and errors
# --------------------------------------------------------------------------------------


class SignalOut(_Out):
    model_config = examples({"name": "meeting_request", "description": "asks for a call, a demo or a meeting"})

    name: str
    description: str


class ThresholdsOut(_Out):
    model_config = examples({"review": 0.55, "spam": 0.7})

    review: float = Field(description="a verdict under this probability goes to review")
    spam: float = Field(description="a spam verdict needs at least this probability of spam")


class ModelOut(_Out):
    """The serving model's manifest: version, labels, metrics, thresholds and every signal."""

    model_config = examples(
        {
            "version": "v20250301-120000-1a2b3c4d",
            "created_at": "2025-03-01T12:00:00+00:00",
            "labels": ["genuine", "sales_pitch", "spam"],
            "metrics": {"grouped_cv": {"macro_f1": 0.93}},
            "thresholds": {"review": 0.55, "spam": 0.7},
            "manifest_thresholds": {"review": 0.55, "spam": 0.7},
            "n_features": 52000,
            "training_data": {"rows": 4000},
            "versions": {"scikit_learn": "1.9.0"},
            "signals": [{"name": "meeting_request", "description": "asks for a call, a demo or a meeting"}],
            "loaded_at": "2025-03-04T08:00:00Z",
            "lists": {"source": None, "allow": {"names": 0}, "deny": {"names": 0}},
        }
    )

    version: str
    created_at: str | None = None
    labels: list[str]
    metrics: dict[str, Any]
    thresholds: ThresholdsOut = Field(description="in force (settings override the manifest)")
    manifest_thresholds: dict[str, Any] = Field(description="as trained")
    n_features: int | None = None
    training_data: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    signals: list[SignalOut]
    loaded_at: datetime
    lists: dict[str, Any] = Field(description="how many allow/deny entries of each kind are loaded")


class ReloadOut(_Out):
    model_config = examples(
        {
            "ok": True,
            "changed": True,
            "version": "v20250305-090000-9f8e7d6c",
            "previous_version": "v20250301-120000-1a2b3c4d",
            "message": "loaded v20250305-090000-9f8e7d6c (was v20250301-120000-1a2b3c4d)",
        }
    )

    ok: bool
    changed: bool
    version: str | None
    previous_version: str | None
    message: str

    @classmethod
    def from_core(cls, r: ReloadResult) -> ReloadOut:
        return cls(ok=r.ok, changed=r.changed, version=r.version, previous_version=r.previous_version, message=r.message)


class HealthOut(_Out):
    model_config = examples({"status": "ok"})

    status: Literal["ok"]


class ReadyOut(_Out):
    model_config = examples({"status": "ready", "model_version": "v20250301-120000-1a2b3c4d", "reason": None})

    status: Literal["ready", "not_ready"]
    model_version: str | None = None
    reason: str | None = None


class ErrorDetail(_Out):
    model_config = examples({"field": "body.items.3.text", "message": "String should have at most 20000 characters"})

    field: str = Field(description="where: a dotted path into the request ('body.items.3.text'), a row ('line 7') or a header")
    message: str
    type: str | None = None


class ErrorOut(_Out):
    """Every error response: a code, a sentence, and the fields or rows at fault."""

    model_config = examples(
        {
            "error": "validation_error",
            "message": "body.text: String should have at most 20000 characters",
            "details": [
                {
                    "field": "body.text",
                    "message": "String should have at most 20000 characters",
                    "type": "string_too_long",
                }
            ],
        }
    )

    error: str
    message: str
    details: list[ErrorDetail] = []
