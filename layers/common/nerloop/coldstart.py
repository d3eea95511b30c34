"""Cold start: no garbage collection while a handler's modules load.

Importing boto3, pydantic, Powertools and nerloop makes ~80,000 objects, and the collector walks
them several times on the way to find almost no garbage: they are modules, classes and functions
that live as long as the process. Pausing it saves 20-30 ms, 15-20 % of `import boto3` (measured
as deployed, on 2 CPUs). So a handler imports this module first, which pauses collection, and calls
`loaded()` once its own module is loaded: what exists then is frozen (no later collection walks it
again) and collection resumes. Re-enabling without freezing would only move the walk to the first
event.
"""

import gc

_collecting = gc.isenabled()  # restored by loaded(): a process that had collection off keeps it off
_frozen = False
gc.disable()


def loaded() -> None:
    """The handler's modules are loaded: freeze what they made and collect garbage again."""
    global _frozen
    if not _frozen:  # only the first time: a process loading several handlers (tests, local mode) freezes once
        gc.freeze()
        _frozen = True
    if _collecting:
        gc.enable()
