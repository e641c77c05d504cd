"""The learning curve of retraining: label N items of one inbox, retrain, score the rest of it.

For each held-out inbox (the independent test inboxes, written by hands the model never saw),
whole conversations are drawn at random until N items are labelled (N = 10, 25, 50, 100);
the model is retrained with them exactly as `triage retrain` does (`train_candidate`: their
weight chosen by grouped cross-validation on them), and the inbox's other conversations are
scored as its export gives them. Two other rows show what the weighting is for:

* `base`: the model before retraining;
* `unweighted`: the same rows added at the corpus's weight (1), as retraining did before.

`--base first-contacts` starts instead from a model trained on the first-contact corpus only
(the synthetic world of the first release), the situation of FIELD_NOTES.md: a base model
far from the user's inbox. Writes reports/adaptation[-<base>].json for notebook 03.

    python scripts/bench_adaptation.py [--labels 10 25 50 100] [--inboxes 8] [--base shipped|first-contacts]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.artifact import load_model  # noqa: E402
from app.corpus import (  # noqa: E402
    Example,
    labelled_inbox_folders,
    load_first_contacts,
    load_inboxes,
    read_labelled_export,
    rendered_inboxes,
)
from app.metrics import classification_report  # noqa: E402
from app.model import LABELS, TriageModel  # noqa: E402
from app.retrain import train_candidate  # noqa: E402
from app.train import DEFAULT_PARAMS, USER_HAND, fit_pipeline, fold_temperature  # noqa: E402

WAYS = ("base", "unweighted", "retrained")


def conversation_of(ex: Example) -> str:
    return ex.item.sender_profile_url or ex.item.sender_name or f"{ex.file}:{ex.line}"


def scores(model: TriageModel, examples: list[Example]) -> dict[str, float]:
    y = np.array([LABELS.index(ex.label) for ex in examples])
    r = classification_report(model.predict_proba([ex.item for ex in examples]), y, model.thresholds)
    return {"macro_f1": r["macro_f1"], "genuine_as_spam_rate": r["genuine_as_spam_rate"], "accuracy": r["accuracy"]}


def draw(examples: list[Example], n: int, rng: random.Random) -> tuple[list[Example], list[Example]]:
    """Whole conversations, in random order, until at least n items are labelled; the rest."""
    conversations = sorted({conversation_of(ex) for ex in examples})
    rng.shuffle(conversations)
    chosen: set[str] = set()
    count = 0
    for c in conversations:
        if count >= n:
            break
        chosen.add(c)
        count += sum(conversation_of(ex) == c for ex in examples)
    seen = [ex for ex in examples if conversation_of(ex) in chosen]
    return seen, [ex for ex in examples if conversation_of(ex) not in chosen]


def as_user(examples: list[Example]) -> list[Example]:
    return [
        Example(ex.item, ex.label, f"conversation:{conversation_of(ex)}", USER_HAND, "user", "bench.csv", i)
        for i, ex in enumerate(examples)
    ]


def base_model(kind: str, data: Path) -> tuple[TriageModel, list[Example], list[Example]]:
    """(base model, corpus examples, extra rows) for the chosen starting point."""
    shipped = load_model(ROOT / "model")
    params = {**DEFAULT_PARAMS, **shipped.manifest["params"]}
    if kind == "shipped":
        extra = load_first_contacts(data) if params["first_contacts"] else []
        return shipped, load_inboxes(rendered_inboxes(data, "train")), extra
    extra = load_first_contacts(data)
    params = {**params, "blocks": [b for b in params["blocks"] if b != "thread"]}
    pipe = fold_temperature(fit_pipeline([], params, extra), shipped.manifest["temperature"])
    manifest = {**shipped.manifest, "params": params, "version": "first-contacts-only"}
    return TriageModel(pipe, shipped.thresholds, manifest), [], extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--inboxes", type=int, default=8, help="how many test inboxes (spread over the test hands)")
    parser.add_argument("--base", choices=["shipped", "first-contacts"], default="shipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    data = ROOT / "data"
    base, corpus, extra = base_model(args.base, data)
    folders = labelled_inbox_folders(rendered_inboxes(data, "test"))
    by_hand: dict[str, list[Path]] = defaultdict(list)
    for folder in folders:
        by_hand[folder.name.split("-")[0]].append(folder)
    hands = list(by_hand.values())
    picked = [hand[i] for i in range(max(map(len, hands))) for hand in hands if i < len(hand)][: args.inboxes]  # round robin
    runs: dict[str, list[dict]] = defaultdict(list)
    for folder in picked:
        examples = [ex for ex in read_labelled_export(folder) if ex.item.text.strip()]
        for n in args.labels:
            rng = random.Random(f"{args.seed}:{folder.name}:{n}")
            seen, rest = draw(examples, n, rng)
            if len(rest) < 20:
                continue
            user = as_user(seen)
            start = time.perf_counter()
            retrained, fit = train_candidate(base, corpus, extra, user, n_jobs=args.jobs, log=lambda _: None)
            seconds = time.perf_counter() - start
            unweighted = TriageModel(
                fold_temperature(
                    fit_pipeline([*corpus, *user], {**base.manifest["params"], "user_weight": 1.0}, extra),
                    base.manifest["temperature"],
                ),
                base.thresholds,
                {},
            )
            row = {
                "inbox": folder.name,
                "labels": len(seen),
                "target": n,
                "rest": len(rest),
                "base": scores(base, rest),
                "unweighted": scores(unweighted, rest),
                "retrained": scores(retrained, rest),
                "share": fit.share,
                "weight": round(fit.weight, 2),
                "retrain_seconds": round(seconds, 1),
            }
            runs[str(n)].append(row)
            print(json.dumps(row), flush=True)
    summary = {
        n: {
            way: {k: round(float(np.mean([r[way][k] for r in rows])), 4) for k in ("macro_f1", "genuine_as_spam_rate")}
            for way in WAYS
        }
        | {
            "inboxes": len(rows),
            "mean_labels": round(float(np.mean([r["labels"] for r in rows])), 1),
            "retrain_seconds": round(float(np.median([r["retrain_seconds"] for r in rows])), 1),
        }
        for n, rows in runs.items()
    }
    out = ROOT / "reports" / ("adaptation.json" if args.base == "shipped" else f"adaptation-{args.base}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"base": args.base, "base_version": base.version, "seed": args.seed, "summary": summary, "runs": runs}
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"{'labels':>7} {'inboxes':>8} " + " ".join(f"{w + ' F1':>15} {w + ' G→S':>15}" for w in WAYS))
    for n, s in summary.items():
        cells = " ".join(f"{s[w]['macro_f1']:>15.4f} {s[w]['genuine_as_spam_rate']:>15.2%}" for w in WAYS)
        print(f"{n:>7} {s['inboxes']:>8} {cells}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
