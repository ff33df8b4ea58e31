"""The desk: `monitor serve`'s web pages over the monitor database (overview,
topic, story, search, sources), triage verdicts, exports and Atom feeds.

app.py builds the Starlette application, security.py owns what keeps it
safe (bind checks, login, sessions, CSRF, response headers), export.py the
CSV, JSON and Atom renderings. Every use case goes through monitor.app.Monitor.
"""
