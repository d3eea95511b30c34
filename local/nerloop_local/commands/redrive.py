"""`nerloop redrive`: re-run the events that failed every attempt, once what broke them is fixed.

    nerloop redrive --workspace DIR [--function NAME] [--dry-run]
    nerloop redrive --stack NAME [--region R] [--function NAME] [--dry-run]

Each dead letter is Lambda's invocation record in the function's on-failure destination queue; its
`requestPayload` (the original event) goes back on the function's event queue as a first attempt,
and the loop runs until idle: the same handler, the same retries. The stages' business-key
idempotency makes a redriven event that had half succeeded, or one redriven twice, change nothing
twice. An event that fails again lands in the dead-letter queue again. Exit status 1 when dead
letters remain.

With `--stack NAME`, the dead letters of a deployed stack's queues go back to its functions on AWS, as
AWS documents for them (`stack_redrive`): one asynchronous Lambda Invoke each with the original event,
then `sqs:DeleteMessage`. A redriven event runs later, on AWS; `nerloop status --stack` shows what stays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nerloop_local.commands.stack_redrive import peek_dead_letters, redrive_stack
from nerloop_local.commands.stack_resources import add_stack_arguments, open_stack_for
from nerloop_local.emulator.event_pump import summarize_event
from nerloop_local.emulator.workspace_runtime import open_workspace
from nerloop_local.usage import UsageError


def describe(letter: dict[str, Any]) -> str:
    event = letter["event"] if isinstance(letter.get("event"), dict) else {}
    error = (letter.get("error") or "").splitlines()[0][:120] if letter.get("error") else ""
    return (f"{letter['function']}  {event.get('detail-type', '')} {summarize_event(event)}  "
            f"after {letter.get('attempts', '?')} attempts: {error}")


def cmd_redrive(args: argparse.Namespace) -> int:
    stack = open_stack_for(args)
    if stack is not None:
        return redrive_a_stack(stack, args)
    workspace: Path = args.workspace
    if not workspace.is_dir():
        raise UsageError(f"{workspace}: no such workspace folder")
    runtime = open_workspace(workspace)
    runtime.start()
    try:
        if args.function is not None and args.function not in runtime.functions:
            raise UsageError(f"no function {args.function!r}; functions: {', '.join(runtime.functions)}")
        letters = runtime.dead_letters(args.function)
        for letter in letters:
            print(f"dead letter: {describe(letter)}")
        if not letters:
            print("no dead letters")
            return 0
        if args.dry_run:
            return 1
        requeued = runtime.redrive(args.function)
        print(f"redriving {len(requeued)} event(s)")
        runtime.on_delivery(lambda delivery: print(delivery.line()))
        result = runtime.run_until_idle(max_cycles=args.max_cycles)
        remaining = runtime.dead_letters(args.function)
        for letter in remaining:
            print(f"still dead: {describe(letter)}")
        if args.json:
            args.json.write_text(json.dumps({"requeued": len(requeued), "idle": result.idle,
                                             "remaining": len(remaining)}, indent=2) + "\n", encoding="utf-8")
        print(f"{len(requeued)} redriven, {len(remaining)} dead letter(s) left")
        return 1 if remaining else 0
    finally:
        runtime.close()


def redrive_a_stack(stack: Any, args: argparse.Namespace) -> int:
    """`--stack`: each dead letter back to its function as an asynchronous invocation, then deleted
    (`stack_redrive`); exit status 1 when letters stay in the queues."""
    if args.function is not None and args.function not in stack.dead_letter_queues:
        raise UsageError(f"no function {args.function!r}; functions: {', '.join(stack.dead_letter_queues)}")
    if args.dry_run:
        letters = peek_dead_letters(stack, args.function)
        for letter in letters:
            print(f"dead letter: {describe({'function': letter.function, **letter.summary(), 'event': letter.event})}")
        print(f"{len(letters)} dead letter(s) in {stack.label}" if letters else "no dead letters")
        return 1 if letters else 0
    outcomes = redrive_stack(stack, args.function)
    for outcome in outcomes:
        shown = {"function": outcome.letter.function, **outcome.letter.summary(), "event": outcome.letter.event}
        print(f"{'redriven' if outcome.sent else 'left'}: {describe(shown)}"
              + (f" ({outcome.problem})" if outcome.problem else ""))
    sent = sum(1 for outcome in outcomes if outcome.sent)
    left = len(outcomes) - sent
    if args.json:
        args.json.write_text(json.dumps({"stack": stack.name, "region": stack.region, "redriven": sent,
                                         "remaining": left}, indent=2) + "\n", encoding="utf-8")
    print(f"{sent} redriven, {left} dead letter(s) left" if outcomes else "no dead letters")
    return 1 if left else 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    redrive = commands.add_parser("redrive", help="re-run dead-lettered events through their functions",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    place = redrive.add_mutually_exclusive_group(required=True)
    place.add_argument("--workspace", type=Path, help="the workspace folder (as for `nerloop up`)")
    add_stack_arguments(redrive, place, "each dead letter's event is sent to its function again (Lambda Invoke, "
                                        "asynchronous), then deleted from its queue")
    redrive.add_argument("--function", help="only this function's dead letters (e.g. MergeFunction)")
    redrive.add_argument("--dry-run", action="store_true", help="list the dead letters, redrive nothing")
    redrive.add_argument("--max-cycles", type=int, default=400, help="pump cycles to run after redriving")
    redrive.add_argument("--json", type=Path, help="also write the outcome as JSON to this file")
    redrive.set_defaults(run=cmd_redrive)
