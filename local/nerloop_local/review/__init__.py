"""The local review page: people answer the local loop's human loops in a browser.

`desk` is what the page may do with the runtime (list, show and answer human loops, read the loop's
status through nerloop_local.report.status), `answers` queues and journals the answers taken until A2I
holds them, `server` serves the page and its JSON API on 127.0.0.1 from a thread, `static/` holds the
page itself (plain HTML, CSS and one ES module; nothing is fetched from elsewhere).
"""
