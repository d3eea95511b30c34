"""A loop's status: what it holds and is doing, collected from a started runtime (`collect_status`) or
from a deployed stack's table (`assemble_status`, which `commands/stack_status` feeds), and written for
people: one line after each round of `nerloop up` (`status_line`), the page of `nerloop status`
(`format_status`). The review page shows part of it (nerloop_local.review.desk.page_status)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from nerloop.retrain import RETRAIN_DONE, RETRAIN_REQUESTED, REVIEWS, pending_reviews
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, JOB_IN_FLIGHT, RECOGNIZER_IN_FLIGHT, WAITING
from nerloop_local.emulator.event_pump import summarize_event
from nerloop_local.emulator.workspace_runtime import open_workspace
from nerloop_local.report.cost import collect_costs, format_costs

POOL_STATUSES = (WAITING, IN_REVIEW, ACCEPTED, GOLD)


def _version_key(name: str) -> tuple[int, str]:
    digits = name[1:] if name.startswith("v") else ""
    return (int(digits), "") if digits.isdigit() else (0, name)


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


# --- collecting ------------------------------------------------------------------------------------------


def read_status(workspace: Path, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start the runtime on a saved workspace, collect its status, close without saving.
    UsageError when no workspace was saved there."""
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        return collect_status(runtime, prices=prices)
    finally:
        runtime.close(save=False)


def collect_status(runtime: Any, history: bool = True, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the loop holds and is doing, read from a started runtime (reads only). `history`: also
    count the deliveries the workspace logged (deliveries.jsonl, which grows with every delivery) and
    price the rounds (`prices`: the table's, or those given with --price)."""
    dead: dict[str, list[dict[str, Any]]] = {}
    for letter in runtime.dead_letters():
        dead.setdefault(letter["function"], []).append({
            "event": summarize_event(letter["event"] or {}), "attempts": letter["attempts"],
            "error": (letter["error"] or "").splitlines()[0] if letter["error"] else ""})
    deliveries: dict[str, Counter[str]] = {}
    for record in runtime.workspace.read_jsonl("deliveries.jsonl") if history else []:
        deliveries.setdefault(record["function"], Counter())[record["outcome"]] += 1
    return assemble_status(
        {"workspace": str(runtime.workspace.root), "saved_at": runtime.workspace.manifest().get("saved_at")},
        runtime.state, runtime.stack.parameters, list(runtime.stack.names["EntityTypes"]),
        loops_waiting=len(runtime.a2i.pending_loops()),
        labeling_jobs_waiting=[job.name for job in runtime.groundtruth.pending_jobs()],
        events_pending={name: count for name, count in runtime.pending().items() if count},
        dead_letters=dead, deliveries={name: dict(counts) for name, counts in deliveries.items()},
        raw_files=len(runtime.list_keys("raw/")),
        cost=collect_costs(runtime.state, prices) if history else None)


def assemble_status(source: dict[str, Any], state: Any, parameters: dict[str, str], entity_types: list[str], *,
                    loops_waiting: int, labeling_jobs_waiting: list[str], events_pending: dict[str, int],
                    dead_letters: dict[str, list[dict[str, Any]]], deliveries: dict[str, dict[str, int]],
                    raw_files: int, cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status of a loop from its state table (a nerloop.state.StateTable) and what its place keeps
    elsewhere: a workspace's runtime, or a deployed stack (`stack_status`). `source` names the place
    (`workspace` and `saved_at`, or `stack`, `region` and `stack_status`) and comes first; `cost`, the
    rounds priced (nerloop_local.report.cost), is shown when given."""
    active = state.versions.active()
    versions = _version_rows(state, active)
    pool = Counter(doc.status for doc in state.pool.documents())
    jobs = state.jobs.list()
    return {
        **source,
        "parameters": dict(parameters),
        "entity_types": entity_types,
        "active": {"version": active[0], "f1": _rounded(active[1])} if active else None,
        "versions": versions,
        "pool": {**{status: pool.get(status, 0) for status in POOL_STATUSES}, "total": sum(pool.values())},
        "gold": {"documents": sum(1 for _ in state.gold.documents())},
        "reviews": {
            "merged": state.counters.get(REVIEWS),
            "toward_next_retrain": pending_reviews(state),
            "retrain_batch_size": int(parameters["RetrainBatchSize"]),
            "retrain_max_wait_minutes": int(parameters.get("RetrainMaxWaitMinutes") or 0),
            "retrain_requested": state.counters.get(RETRAIN_REQUESTED) > state.counters.get(RETRAIN_DONE),
            "loops_waiting": loops_waiting,
        },
        "labeling_jobs_waiting": labeling_jobs_waiting,
        "in_flight": {
            "trainings": [{"version": v["version"], "status": v["status"]} for v in versions
                          if v["status"] in RECOGNIZER_IN_FLIGHT],
            "detection_jobs": [{"job_id": job.job_id, "version": job.version, "status": job.status,
                                "documents": job.documents} for job in jobs if job.status in JOB_IN_FLIGHT],
            "training_lock": state.training_lock.holder(),
        },
        "events_pending": events_pending,
        "dead_letters": dead_letters,
        "deliveries": deliveries,
        "raw_files": raw_files,
        # --- cost per round (nerloop_local.report.cost) ---
        **({"cost": cost} if cost is not None else {}),
    }


def _version_rows(state: Any, active: tuple[str, float] | None) -> list[dict[str, Any]]:
    """Every version, oldest first, with its test-set figures and whether it serves."""
    versions = []
    for version in sorted(state.versions.list(), key=lambda v: _version_key(v.version)):
        metrics = version.metrics or {}
        versions.append({
            "version": version.version, "status": version.status,
            "active": bool(active and active[0] == version.version),
            **{key: _rounded(metrics.get(key)) for key in ("f1", "precision", "recall")},
            "per_type": {name: {key: _rounded(figures.get(key)) for key in ("f1", "precision", "recall")}
                         for name, figures in sorted((metrics.get("per_type") or {}).items())},
            "trained_documents": metrics.get("trained_documents"), "test_documents": metrics.get("test_documents"),
            "created_at": version.created_at, "message": version.message,
        })
    return versions


# --- for people ------------------------------------------------------------------------------------------


def _figure(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def status_line(status: dict[str, Any], review_url: str | None = None) -> str:
    """One line for `up`: the pool, the active version, what waits for people (and where they answer)."""
    pool = status["pool"]
    active = status["active"]
    parts = [f"pool {pool['waiting']} waiting, {pool['in_review']} in review, {pool['accepted']} accepted, "
             f"{pool['gold']} gold", f"gold set {status['gold']['documents']}",
             f"active {active['version']} (F1 {_figure(active['f1'])})" if active else "no active version"]
    latest = status["versions"][-1] if status["versions"] else None
    if latest and not latest["active"]:
        parts.append(f"latest {latest['version']} {latest['status']}")
    reviews = status["reviews"]
    if reviews["loops_waiting"]:
        parts.append(f"{reviews['loops_waiting']} human loops wait for a reviewer"
                     + (f" at {review_url}" if review_url else ""))
    if status["labeling_jobs_waiting"]:
        parts.append(f"{len(status['labeling_jobs_waiting'])} labeling jobs wait for labels "
                     "(the gold set is empty: start with --seed-manifest)")
    dead = sum(len(letters) for letters in status["dead_letters"].values())
    if dead:
        parts.append(f"{dead} dead letters")
    return "status: " + " · ".join(parts)



def format_status(status: dict[str, Any]) -> list[str]:
    """`nerloop status` for people: the place and its settings, the versions, the pool and the reviews,
    the work in flight, the dead letters, then (when collected) the cost per round and the deliveries."""
    lines = [*_heading(status), "", "versions", *_version_lines(status["versions"])]
    lines += ["", *_pool_lines(status), *_in_flight_lines(status)]
    lines += ["", "dead letters" + ("  none" if not status["dead_letters"] else "")]
    lines += _dead_letter_lines(status["dead_letters"])
    if "cost" in status:  # --- cost per round (nerloop_local.report.cost) ---
        lines += format_costs(status["cost"])
    if status["deliveries"]:
        lines += ["", "deliveries (ok / retried / dead-lettered)", *_delivery_lines(status["deliveries"])]
    return lines


def _heading(status: dict[str, Any]) -> list[str]:
    """Where the loop runs, and the parameters that decide when people review and when it retrains."""
    parameters = status["parameters"]
    budget = int(parameters.get("ReviewBudget", "0"))
    place = (f"stack {status['stack']} ({status['region']}, {status['stack_status']})" if "stack" in status
             else f"workspace {status['workspace']} (saved {status['saved_at'] or 'never'})")
    return [place,
            f"entity types {', '.join(status['entity_types'])} · confidence threshold "
            f"{parameters.get('ConfidenceThreshold')} · retrain after {status['reviews']['retrain_batch_size']} "
            f"reviews (fewer when no loop is open) · review budget {budget or 'no limit'} per detection job"]


def _version_lines(versions: list[dict[str, Any]]) -> list[str]:
    if not versions:
        return ["  none yet"]
    lines = []
    for version in versions:
        per_type = "  ".join(f"{name} {_figure(figures['f1'])}" for name, figures in version["per_type"].items())
        line = (f"  {version['version']:<5} {version['status']:<10} F1 {_figure(version['f1'])} "
                f"(P {_figure(version['precision'])}, R {_figure(version['recall'])})  {per_type}")
        if version["active"]:
            line += "  ← active"
        if version["message"]:
            line += f"  {version['message']}"
        lines.append(line.rstrip())
    return lines


def _pool_lines(status: dict[str, Any]) -> list[str]:
    """The pool, the gold set, the reviews toward the next retrain, and what waits for people."""
    pool, reviews = status["pool"], status["reviews"]
    wait = int(reviews.get("retrain_max_wait_minutes") or 0)
    waited = f" or {wait} minutes after the oldest was merged" if wait else ""
    lines = [
        f"pool          {pool['waiting']} waiting · {pool['in_review']} in review · {pool['accepted']} accepted · "
        f"{pool['gold']} gold ({pool['total']} documents, from {status['raw_files']} raw files)",
        f"gold set      {status['gold']['documents']} documents",
        f"reviews       {reviews['merged']} merged · {reviews['toward_next_retrain']} pending: the next retrain "
        f"starts at {reviews['retrain_batch_size']}, or with fewer once no human loop is open{waited}"
        + (" · retrain requested" if reviews["retrain_requested"] else ""),
        f"human loops   {reviews['loops_waiting']} waiting for a reviewer",
    ]
    if status["labeling_jobs_waiting"]:
        lines.append(f"labeling jobs {len(status['labeling_jobs_waiting'])} waiting for labels: "
                     + ", ".join(status["labeling_jobs_waiting"]))
    return lines


def _in_flight_lines(status: dict[str, Any]) -> list[str]:
    flight = status["in_flight"]
    trainings = ", ".join(f"{t['version']} {t['status']}" for t in flight["trainings"]) or "none"
    jobs = ", ".join(f"{j['job_id']} ({j['version']}, {j['documents']} documents) {j['status']}"
                     for j in flight["detection_jobs"]) or "none"
    pending = ", ".join(f"{name} {count}" for name, count in status["events_pending"].items()) or "none"
    return [
        f"trainings     {trainings}",
        f"detection     {jobs}",
        f"training lock {flight['training_lock'] or 'free'}",
        f"events queued {pending}",
    ]


def _dead_letter_lines(dead_letters: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for function, letters in dead_letters.items():
        lines.append(f"  {function}: {len(letters)}")
        lines.extend(f"    {letter['event']}: {letter['error']} ({letter['attempts']} attempts)" for letter in letters)
    return lines


def _delivery_lines(deliveries: dict[str, dict[str, int]]) -> list[str]:
    return [f"  {function:<28} {counts.get('ok', 0)} / {counts.get('retry', 0)} / {counts.get('dead-letter', 0)}"
            for function, counts in deliveries.items()]
