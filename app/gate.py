"""The promotion gate shared by `triage train` and `triage retrain`, and the act of promoting.

What a candidate must show to replace the current model:

* **With user rows the current model never trained on** (at least MIN_JUDGED_ROWS of them),
  those rows judge first: the candidate's cross-validated macro-F1 on them must be higher
  than the current model's in at least MIN_CHANCE_BETTER of paired bootstrap resamples of them
  (a gain that a different draw of the same rows would undo is noise, not learning), and its
  genuine-as-spam rate there must not rise.
* **The frozen test inboxes** guard against collapse: macro-F1 there may fall by at most
  `guard_tolerance(n)`, which grows with the number of user rows n (0.5 points with none,
  up to 10 points with 500 or more: the user's own data then outweighs simulated inboxes),
  and genuine-as-spam may rise by at most 1 point when user rows are judged, not at all
  otherwise.

Promotion writes the version folder first, then points CURRENT at it, then records the
promotion in the history: a run killed at any step leaves either the old current model or
the new one, and never lists as promoted a version that did not become current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import artifact
from app.model import TriageModel

MIN_JUDGED_ROWS = 20
MIN_CHANCE_BETTER = 0.9  # share of paired bootstrap resamples of the user's rows the candidate must win
BASE_TOLERANCE = 0.005  # macro-F1 points a retrain without user rows may lose on the test inboxes
USER_TOLERANCE = (0.03, 0.07, 500)  # with n user rows: 0.03 + 0.07 * min(1, n / 500)
USER_GENUINE_AS_SPAM_SLACK = 0.01


def guard_tolerance(n_user: int) -> float:
    """How much test-inbox macro-F1 a candidate may lose, given n user rows behind it."""
    if n_user <= 0:
        return BASE_TOLERANCE
    base, extra, full = USER_TOLERANCE
    return round(base + extra * min(1.0, n_user / full), 4)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures a comparison shows from a classification report."""
    return {k: report[k] for k in ("macro_f1", "genuine_as_spam_rate", "accuracy", "n")}


@dataclass
class Decision:
    passed: bool
    reason: str


def judge(test: dict[str, dict[str, Any]], user: dict[str, Any] | None, n_user: int) -> Decision:
    """Apply the gate to {'current', 'candidate'} summaries on the test inboxes and the user rows (whose pair
    may carry `chance_better`, the share of paired resamples the candidate wins)."""
    reasons = []
    judged = user is not None and user["candidate"]["n"] >= MIN_JUDGED_ROWS
    if user is not None and judged:
        cur, cand = user["current"], user["candidate"]
        if cand["macro_f1"] <= cur["macro_f1"]:
            return Decision(False, f"not better on your rows: macro-F1 {cur['macro_f1']:.4f} -> {cand['macro_f1']:.4f}")
        chance = user.get("chance_better")
        if chance is not None and chance < MIN_CHANCE_BETTER:
            return Decision(
                False,
                f"not reliably better on your rows: macro-F1 {cur['macro_f1']:.4f} -> {cand['macro_f1']:.4f}, but the "
                f"candidate wins only {chance:.0%} of resamples of them (needs {MIN_CHANCE_BETTER:.0%})",
            )
        if cand["genuine_as_spam_rate"] > cur["genuine_as_spam_rate"]:
            return Decision(
                False,
                f"genuine filed as spam rises on your rows: {cur['genuine_as_spam_rate']:.2%} -> "
                f"{cand['genuine_as_spam_rate']:.2%}",
            )
        won = f", won {chance:.0%} of resamples" if chance is not None else ""
        reasons.append(f"your rows macro-F1 {cur['macro_f1']:.4f} -> {cand['macro_f1']:.4f}{won}")
    elif user is not None:
        reasons.append(f"only {user['candidate']['n']} new row(s) of yours (< {MIN_JUDGED_ROWS}): the test inboxes decide")
    tolerance = guard_tolerance(n_user)
    cur, cand = test["current"], test["candidate"]
    drop = cur["macro_f1"] - cand["macro_f1"]
    if drop > tolerance:
        allowed = f"the guard allows {tolerance * 100:.1f} with {n_user} user rows"
        return Decision(False, f"test-inbox macro-F1 falls by {drop * 100:.2f} points ({allowed})")
    slack = USER_GENUINE_AS_SPAM_SLACK if judged else 0.0
    if cand["genuine_as_spam_rate"] > cur["genuine_as_spam_rate"] + slack:
        return Decision(
            False,
            f"genuine filed as spam rises on the test inboxes: {cur['genuine_as_spam_rate']:.2%} -> "
            f"{cand['genuine_as_spam_rate']:.2%}",
        )
    reasons.append(f"test macro-F1 {cur['macro_f1']:.4f} -> {cand['macro_f1']:.4f} (guard {tolerance * 100:.1f} points)")
    return Decision(True, "; ".join(reasons))


def format_comparison(comparison: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table printed by `triage train` and `triage retrain`."""
    lines = [f"{'':<34}{'current':>12}{'candidate':>12}"]
    for section, pair in comparison.items():
        cur, cand = pair.get("current") or {}, pair.get("candidate") or {}
        lines.append(f"{section} (n={cand.get('n', cur.get('n', 0))})")
        for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy"), ("genuine_as_spam_rate", "genuine as spam")):
            fmt = "{:>12.2%}" if key == "genuine_as_spam_rate" else "{:>12.4f}"
            cells = [fmt.format(d[key]) if key in d else f"{'-':>12}" for d in (cur, cand)]
            lines.append(f"  {name:<32}" + "".join(cells))
        if "chance_better" in pair:
            lines.append(f"  {'candidate wins, of resamples':<32}{'':>12}{pair['chance_better']:>12.0%}")
    return "\n".join(lines)


def promote_or_keep(
    model: TriageModel,
    store: Path,
    manifest: dict[str, Any],
    decision: Decision,
    previous: str | None,
    force: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Save the candidate (unless a dry run) and make it current if the gate passed or `force`.

    Returns the outcome: "promoted", "promoted (forced)", "rejected" or "dry run".
    """
    promote = decision.passed or force
    forced = force and not decision.passed
    if dry_run:
        log(f"dry run: {'would promote' if promote else 'would reject'} ({decision.reason}); nothing saved")
        return "dry run"
    manifest = dict(manifest, status="candidate" if promote else "rejected", previous_version=previous)
    manifest["gate"] = {"passed": decision.passed, "reason": decision.reason, "forced": forced}
    model.manifest = manifest
    artifact.save_model(model, store, manifest, make_current=False)
    version = manifest["version"]
    if not promote:
        artifact.record_history(store, "reject", version, previous=previous, reason=decision.reason)
        log(f"rejected: {version} kept but not current ({decision.reason})")
        return "rejected"
    artifact.set_current(store, version)
    artifact.record_history(store, "promote", version, previous=previous, reason=("forced: " if forced else "") + decision.reason)
    outcome = "promoted (forced)" if forced else "promoted"
    log(f"{outcome}: {version} ({decision.reason})")
    return outcome
