"""`nerloop report`'s pages and figures: the demo's test-set report, the live report from the loop's own
records, the learning benchmark's report, and each round's cost. The command itself, which picks the page,
is nerloop_local.commands.report."""
