"""Rankings for the review budget compared offline: the loop's rounds without the emulator.

Each round trains the local CRF on the seed plus the documents reviewed so far, detects the rest of
the pool, and lets a ranking choose the next `--share` of the pool (labels from the manifest, as the
demo's simulated reviewer gives them); test F1 after each round. Much faster than `make learn`,
so rankings can be compared over many seeds; the chosen one is then confirmed by `make learn`.

    python -m bench.selection MANIFEST --seeds 5 --share 0.1 --rounds 3 [--threshold 0.95]

Rankings (each passes over near-duplicates, `nerloop.routing.pick_diverse`):
- random:           a random sample of the pool
- min-score:        uncertain documents (an entity below the threshold), lowest minimum score first;
                    the budget is not filled beyond them (nerloop before issue 11)
- expected-errors:  uncertain documents by the sum of (1 - score), then the room they leave filled by
                    `nerloop.routing.fill_priority` (what the route stage does)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nerloop.routing import expected_errors, fill_priority, pick_diverse, word_set
from nerloop_local.commands.demo import load_manifest
from nerloop_local.commands.demo_data import split_for_demo
from nerloop_local.recognizer.crf import evaluate, train_recognizer

RANKINGS = ("random", "min-score", "expected-errors")


def choose(ranking: str, remaining: list[int], texts: Sequence[str], predictions: dict[int, Any], budget: int,
           threshold: float, rng: random.Random) -> list[int]:
    """The documents (pool indices) `ranking` sends to review from `remaining`."""
    if ranking == "random":
        return rng.sample(remaining, min(budget, len(remaining)))

    def diverse(ranked: list[int], limit: int) -> list[int]:
        chosen, _ = pick_diverse(ranked[: limit * 4], limit, lambda i: word_set(texts[i]))
        return chosen

    uncertain = [i for i in remaining if any(e.score < threshold for e in predictions[i])]
    key: Callable[[int], tuple[float, int]]
    if ranking == "min-score":
        key = lambda i: (min(e.score for e in predictions[i]), i)  # noqa: E731
        return diverse(sorted(uncertain, key=key), budget)
    chosen = diverse(sorted(uncertain, key=lambda i: (-expected_errors(predictions[i]), i)), budget)
    taken = set(chosen)
    others = sorted((i for i in remaining if i not in taken),
                    key=lambda i: (-fill_priority(predictions[i], texts[i]), i))
    return chosen + diverse(others, budget - len(chosen))


def run(manifest: Path, ranking: str, seed: int, *, rounds: int, share: float, threshold: float) -> list[float]:
    """Test F1 after 0, 1, … `rounds` rounds of reviews."""
    documents, types, _ = load_manifest(manifest)
    split = split_for_demo(documents, types, test_fraction=0.25, seed=seed)
    texts = [text for text, _ in split.pool]
    budget = max(1, int(len(split.pool) * share))
    labelled, remaining = list(split.seed), list(range(len(split.pool)))
    rng = random.Random(seed)  # nosec B311 # sampling, not secrets
    curve = []
    for round_ in range(rounds + 1):
        model = train_recognizer(labelled, types, seed=seed)
        curve.append(round(evaluate(model, split.test).f1, 4))
        if round_ == rounds:
            return curve
        predictions = {i: model.detect(texts[i]) for i in remaining}
        chosen = choose(ranking, remaining, texts, predictions, budget, threshold, rng)
        labelled += [split.pool[i] for i in chosen]
        taken = set(chosen)
        remaining = [i for i in remaining if i not in taken]
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.selection", description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.1, help="of the pool reviewed a round")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--rankings", default=",".join(RANKINGS))
    args = parser.parse_args(argv)
    results: dict[str, list[list[float]]] = {}
    for ranking in args.rankings.split(","):
        results[ranking] = [run(args.manifest, ranking, seed, rounds=args.rounds, share=args.share,
                                threshold=args.threshold) for seed in range(args.seeds)]
        means = [statistics.mean(curve[i] for curve in results[ranking]) for i in range(args.rounds + 1)]
        print(f"{ranking:>16}: " + " ".join(f"{m:.4f}" for m in means), file=sys.stderr, flush=True)
    print(json.dumps({"manifest": str(args.manifest), "share": args.share, "threshold": args.threshold,
                      "curves": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
