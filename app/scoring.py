"""The one scoring core: allow/deny lists, then the model, for a list of items at once.

Every way in calls `Scorer.score`: the single-item and batch endpoints, CSV uploads,
`triage score`, the web page and the Dask engine. It knows nothing of HTTP or files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from app.items import Item
from app.lists import Lists, list_verdict
from app.model import DEFAULT_REASONS, Explanation, TriageModel, Verdict

SOURCE_MODEL = "model"
SOURCES = (SOURCE_MODEL, "allow_list", "deny_list")


@dataclass(frozen=True)
class Scorer:
    """A model and the user's lists, used together; immutable, so a reload swaps the whole scorer."""

    model: TriageModel
    lists: Lists = field(default_factory=Lists)

    @property
    def version(self) -> str:
        return self.model.version

    def score(self, items: Sequence[Item], n_reasons: int = DEFAULT_REASONS) -> list[Verdict]:
        """A verdict per item, in order: a list match decides outright, the model scores the rest in one pass."""
        out: list[Verdict | None] = [None] * len(items)
        for_model: list[int] = []
        for i, item in enumerate(items):
            matches = self.lists.match(item) if not self.lists.empty else []
            if matches:
                out[i] = list_verdict(matches, self.model.version)
            else:
                for_model.append(i)
        for i, verdict in zip(for_model, self.model.verdicts([items[i] for i in for_model], n_reasons), strict=True):
            out[i] = verdict
        return [v for v in out if v is not None]

    def explain(self, item: Item) -> Explanation:
        """The model's exact decomposition; its verdict is the list's when a list decides."""
        explanation = self.model.explain(item)
        matches = self.lists.match(item) if not self.lists.empty else []
        return replace(explanation, verdict=list_verdict(matches, self.version)) if matches else explanation
