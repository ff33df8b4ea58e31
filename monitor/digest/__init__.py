"""The digest: the report a desk reads every morning (a package: model.py the
records, select.py what goes in through the store, rank.py the order and each
story's entry, render.py the formats, run.py the period, delivery and record).

Owns what a digest contains and how it is shown. ``build`` selects the hits of
a period ``[since, until)``, groups them by topic (config order) and by story
(``items.story_key``: one entry per story, listing every feed that carried it),
ranks stories by number of sources then recency, shows a story that matched
several topics in full once (its first topic) and as a reference elsewhere,
and adds per-topic counts (this period, the previous period of equal length,
a 14-day series) and the health of the sources. The result is a frozen
``Digest``; ``render`` turns it into text, Markdown, HTML (Jinja2 templates in
``monitor/templates/``) or JSON (the DESIGN.md shape).

Safety: feed text is never trusted. It is stripped of control and bidi-override
characters when the digest is built; HTML is autoescaped; the Markdown
environment escapes every interpolated value unless a filter of ours built it;
only http(s) URLs become links. A scheduled digest (app.run_digest) is built,
written to ``output_dir`` and/or mailed, then its period remembered in the
``digests`` table so the next digest of the same name starts where it ended.
A digest run by hand (``manual_period``) starts there too but remembers
nothing unless asked (``record``), so running it again shows the same period.
It never fetches and holds no SQL (every read and write goes through Store).
"""

from __future__ import annotations

from monitor.digest.model import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    EXTENSIONS,
    FORMATS,
    MAX_ERROR,
    MAX_LINKS,
    MAX_LISTED,
    MAX_NAME,
    MAX_SNIPPET,
    MAX_TERMS,
    MAX_TITLE,
    RHYTHM_ITEMS,
    SILENT_DEFAULT,
    SILENT_FACTOR,
    SILENT_FLOOR,
    SILENT_MIN_ITEMS,
    SPARK,
    TEMPLATES,
    VOLUME_DAYS,
    Digest,
    DisabledFeed,
    FailingFeed,
    Link,
    SilentFeed,
    SourcesHealth,
    Story,
    TopicSection,
    clean,
    safe_url,
)
from monitor.digest.render import (
    CHART_BAR,
    CHART_GAP,
    CHART_HEIGHT,
    Bar,
    bars,
    day,
    gap,
    heading,
    md_escape,
    md_link,
    md_snippet,
    plural,
    render,
    sparkline,
    subject,
    text_snippet,
    title,
    to_json,
    trend,
    when,
)
from monitor.digest.run import (
    Period,
    default_since,
    last_until,
    manual_period,
    output_name,
    record,
    send,
    slug,
    write_atomic,
)
from monitor.digest.select import (
    build,
)
from monitor.query import segments

__all__ = [
    "CHART_BAR",
    "CHART_GAP",
    "CHART_HEIGHT",
    "DEFAULT_LIMIT",
    "DEFAULT_WINDOW",
    "EXTENSIONS",
    "FORMATS",
    "MAX_ERROR",
    "MAX_LINKS",
    "MAX_LISTED",
    "MAX_NAME",
    "MAX_SNIPPET",
    "MAX_TERMS",
    "MAX_TITLE",
    "RHYTHM_ITEMS",
    "SILENT_DEFAULT",
    "SILENT_FACTOR",
    "SILENT_FLOOR",
    "SILENT_MIN_ITEMS",
    "SPARK",
    "TEMPLATES",
    "VOLUME_DAYS",
    "Bar",
    "Digest",
    "DisabledFeed",
    "FailingFeed",
    "Link",
    "Period",
    "SilentFeed",
    "SourcesHealth",
    "Story",
    "TopicSection",
    "bars",
    "build",
    "clean",
    "day",
    "default_since",
    "gap",
    "heading",
    "last_until",
    "manual_period",
    "md_escape",
    "md_link",
    "md_snippet",
    "output_name",
    "plural",
    "record",
    "render",
    "safe_url",
    "segments",
    "send",
    "slug",
    "sparkline",
    "subject",
    "text_snippet",
    "title",
    "to_json",
    "trend",
    "when",
    "write_atomic",
]
