"""Delivery: getting a finished report to people (mail now; alerts beside it later).

Owns the seams to the outside (SMTP settings, message headers made safe, the
send and its errors). It must not build reports: what a message says is the
digest's business, handed over as subject, text and HTML.
"""
