"""Feed health as a newcomer meets it (issue 12): what `monitor poll`, `feeds`,
`status` and the digest say about unreadable, disabled, new and unnamed feeds,
the language feeds.yaml gives, and how quiet the output and the log are.

Real feed files served on 127.0.0.1 (tests/feedserver.py), the real CLI, real
SQLite files in tmp_path; the daemon tests run `python -m monitor run`.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedserver import FeedServer
from helpers import DATA, run_cli, write_config
from test_daemon import FAST, daemon

FEEDS = DATA / "feeds"
BROKEN = (DATA / "health" / "arts-and-ego-broken.xml").read_bytes()  # 0 items, not well-formed
NO_ITEMS = (DATA / "health" / "dailymail-no-items.xml").read_bytes()  # valid, 0 items
KZ = (FEEDS / "kz-news.xml").read_bytes()  # 12 items, no <language>
KZ_TITLE = "Kazakhstan news (test fixture)"
RSS = "application/rss+xml; charset=utf-8"
# Hosts that never resolve, and fail inside the local resolver before any
# query is sent: glibc refuses a name that starts with "-" (res_hnok; checked
# with strace: no packet to the nameserver), and ".invalid" is reserved
# (RFC 2606) should another resolver send the query anyway.
OFFLINE_HOSTS = ("-offline-a.invalid", "-offline-b.invalid")


def cli_json(*args: str, config: Path, db: Path) -> Any:
    result = run_cli(*args, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def poll(config: Path, db: Path) -> dict[str, dict[str, Any]]:
    return by_id(cli_json("poll", "--force", config=config, db=db)["feeds"])


# --- 1. an unreadable document is a failure ----------------------------------------------

def test_unreadable_feed_fails_in_poll_feeds_status_and_digest_and_stays_failing(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/broken", BROKEN, RSS)
    server.put("/no-items", NO_ITEMS, RSS)
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "broken", "name": "Arts and ego", "url": server.url("/broken")},
        {"id": "no-items", "name": "Mail", "url": server.url("/no-items")}], topics=False)
    db = tmp_path / "monitor.db"

    first = poll(config, db)
    assert first["broken"]["status"] == "failed"
    assert first["broken"]["error"]["kind"] == "parse"
    assert "not well-formed XML" in first["broken"]["error"]["reason"]
    assert first["no-items"]["status"] == "unchanged" and first["no-items"]["error"] is None

    feeds = by_id(cli_json("feeds", config=config, db=db)["feeds"])
    assert feeds["broken"]["state"] == "failing"
    assert feeds["broken"]["last_error_kind"] == "parse"
    assert feeds["no-items"]["state"] == "ok"  # a valid feed with no item is fine

    status = cli_json("status", config=config, db=db)
    assert status["failing"] == 1
    assert by_id(status["feed_states"])["broken"]["error_kind"] == "parse"
    text = run_cli("status", config=config, db=db).stdout
    assert "failing broken (Arts and ego): parse: not well-formed XML" in text

    digest = run_cli("digest", "--format", "json", "--no-record", config=config, db=db)
    assert digest.exit_code == 0, digest.output
    failing = json.loads(digest.stdout)["sources"]["failing"]
    assert [(f["id"], f["kind"]) for f in failing] == [("broken", "parse")]

    # The same bytes again: no validator or body hash was kept from the
    # failure, so the body is parsed again and the feed is still failing.
    second = poll(config, db)
    assert second["broken"]["status"] == "failed" and second["broken"]["http_status"] == 200
    assert server.count("/broken") == 2
    assert by_id(cli_json("feeds", config=config, db=db)["feeds"])["broken"]["error_count"] == 2


# --- 2. a disabled feed ------------------------------------------------------------------

def test_gone_feed_shows_disabled_with_reason_and_date_and_no_next_due(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/gone", b"gone", "text/plain", status=410)
    server.put("/kz", KZ, RSS)
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "gone", "name": "Gone", "url": server.url("/gone")},
        {"id": "kz", "name": "KZ", "url": server.url("/kz")}], topics=False)
    db = tmp_path / "monitor.db"
    assert poll(config, db)["gone"]["error"]["kind"] == "gone"
    today = datetime.now(UTC).strftime("%Y-%m-%d")

    gone = by_id(cli_json("feeds", config=config, db=db)["feeds"])["gone"]
    assert gone["state"] == "disabled" and "410" in gone["disabled_reason"]
    assert gone["disabled_at"].startswith(today) and gone["next_due_at"] is None
    table = run_cli("feeds", config=config, db=db).stdout
    gone_row = table.split("│ gone", 1)[1].split("│ kz", 1)[0]  # its wrapped lines
    assert "from now" not in gone_row
    assert all(word in gone_row for word in ("disabled", "never", "410", f"{today})"))

    status = cli_json("status", config=config, db=db)
    assert status["disabled"] == 1 and status["next_due"]["id"] == "kz"
    text = run_cli("status", config=config, db=db).stdout
    assert "disabled gone (Gone): HTTP 410" in text and f"(disabled {today})" in text


# --- 3. every configured feed is listed at once ------------------------------------------

def test_configured_feeds_listed_as_new_before_any_poll_without_writing(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", KZ, RSS)
    server.put("/no-items", NO_ITEMS, RSS)
    feeds = [{"id": "kz", "name": "KZ", "url": server.url("/kz")},
             {"id": "mail", "name": "Mail", "url": server.url("/no-items")}]
    config = write_config(tmp_path / "feeds.yaml", feeds, topics=False)
    db = tmp_path / "monitor.db"

    listed = by_id(cli_json("feeds", config=config, db=db)["feeds"])
    assert {k: (v["state"], v["items"]) for k, v in listed.items()} == {
        "kz": ("new", 0), "mail": ("new", 0)}
    status = cli_json("status", config=config, db=db)
    assert status["feeds"] == 2 and status["states"]["new"] == 2
    assert status["state"] == "never started" and status["next_due"]["id"] == "kz"
    assert "new, not polled yet: kz, mail" in run_cli("status", config=config, db=db).stdout
    assert "│ kz   │ KZ   │ new" in run_cli("feeds", config=config, db=db).stdout
    assert not db.exists()  # reading created nothing

    result = run_cli("poll", "--force", "--feed", "kz", config=config, db=db)
    assert result.exit_code == 0, result.output
    feeds.append({"id": "added", "name": "Added", "url": server.url("/added")})
    write_config(config, feeds, topics=False)
    listed = by_id(cli_json("feeds", config=config, db=db)["feeds"])
    assert {k: v["state"] for k, v in listed.items()} == {"kz": "ok", "mail": "new",
                                                         "added": "new"}
    assert cli_json("status", config=config, db=db)["states"]["new"] == 2
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM feeds WHERE id = 'added'").fetchone() == (0,)
    conn.close()


# --- 4. name is optional -----------------------------------------------------------------

def test_name_defaults_to_the_documents_title_else_the_id(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", KZ, RSS)
    config = write_config(tmp_path / "feeds.yaml", [{"id": "kz", "url": server.url("/kz")}],
                          topics=False)
    db = tmp_path / "monitor.db"
    assert run_cli("check", config=config).exit_code == 0
    assert by_id(cli_json("feeds", config=config, db=db)["feeds"])["kz"]["name"] == "kz"
    poll(config, db)
    row = by_id(cli_json("feeds", config=config, db=db)["feeds"])["kz"]
    assert row["name"] == KZ_TITLE and row["name_given"] is None
    assert "Kazakhstan" in run_cli("feeds", config=config, db=db).stdout

    server.put("/kz", b"not found", "text/plain", status=404)
    poll(config, db)
    digest = run_cli("digest", "--format", "json", "--no-record", config=config, db=db)
    [failing] = json.loads(digest.stdout)["sources"]["failing"]
    assert (failing["id"], failing["name"]) == ("kz", KZ_TITLE)
    assert by_id(cli_json("status", config=config, db=db)["feed_states"])["kz"]["name"] == \
        KZ_TITLE


# --- 5. the language of feeds.yaml -------------------------------------------------------

def test_feeds_yaml_language_applies_to_items_of_a_document_without_one(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", KZ, RSS)
    server.put("/bbc", (FEEDS / "bbc-world.xml").read_bytes(), RSS)  # <language>en-gb
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "kz", "name": "KZ", "url": server.url("/kz"), "language": "kk"},
        {"id": "bbc", "name": "BBC", "url": server.url("/bbc"), "language": "ru"}],
        topics=False)
    db = tmp_path / "monitor.db"
    poll(config, db)
    conn = sqlite3.connect(db)
    languages = dict(conn.execute("SELECT feed_id, group_concat(DISTINCT language) FROM items "
                                  "GROUP BY feed_id"))
    conn.close()
    assert languages == {"kz": "kk", "bbc": "en-gb"}  # the document's own word wins


# --- 6. quiet output ---------------------------------------------------------------------

def test_a_note_that_changes_nothing_shows_only_with_verbose(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", KZ, "text/plain; charset=utf-8")  # valid RSS, not an XML media type
    config = write_config(tmp_path / "feeds.yaml",
                          [{"id": "kz", "name": "KZ", "url": server.url("/kz")}], topics=False)
    quiet = run_cli("poll", "--force", config=config, db=tmp_path / "a.db")
    assert quiet.exit_code == 0 and "│ kz" in quiet.stdout
    assert "NonXML" not in quiet.stdout
    verbose = run_cli("-v", "poll", "--force", config=config, db=tmp_path / "b.db")
    assert verbose.exit_code == 0 and "NonXML" in verbose.stdout
    # The data keeps it: --json and the stored feed.
    data = cli_json("poll", "--force", config=config, db=tmp_path / "c.db")
    assert data["feeds"][0]["bozo"].startswith("NonXMLContentType")


def _offline_config(tmp_path: Path) -> Path:
    assert all(h.startswith("-") and h.endswith(".invalid") for h in OFFLINE_HOSTS)
    return write_config(tmp_path / "feeds.yaml", [
        {"id": f"far-{i}", "name": f"Far {i}", "url": f"http://{host}/feed"}
        for i, host in enumerate(OFFLINE_HOSTS)],
        topics=False, settings=FAST)


def test_poll_says_the_machine_looks_offline_when_every_feed_fails_dns(tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    result = run_cli("poll", "--force", config=config, db=tmp_path / "a.db")
    assert result.exit_code == 0, result.output
    assert "All 2 feeds failed name resolution (DNS): this machine looks offline" in \
        result.stdout
    assert "DNS lookup failed" not in result.output  # not once per feed
    data = cli_json("poll", "--force", config=config, db=tmp_path / "b.db")
    assert data["offline"] is True and {f["error"]["kind"] for f in data["feeds"]} == {"dns"}


def test_daemon_logs_a_failing_feed_once_per_cycle(tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", KZ, "text/plain; charset=utf-8")  # a note that changes nothing
    server.put("/broken", BROKEN, RSS)
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "kz", "name": "KZ", "url": server.url("/kz")},
        {"id": "broken-feed", "name": "Broken", "url": server.url("/broken")}], topics=False,
        settings=FAST)
    with daemon(tmp_path, config, tmp_path / "monitor.db") as d:
        d.wait_log("cycle: 2 feeds polled")
        assert d.stop() == 0
    lines = [line for line in d.log().splitlines() if "broken-feed" in line]
    assert lines and len(lines) == server.count("/broken"), lines  # one per fetch
    assert all(" WARNING monitor.poll: feed broken-feed: not well-formed XML" in line
               for line in lines), lines
    kz = [line for line in d.log().splitlines() if "feed kz:" in line]
    assert kz and not any("NonXML" in line for line in kz), kz  # only with -v


def test_daemon_logs_one_offline_line_instead_of_one_per_feed(tmp_path: Path) -> None:
    with daemon(tmp_path, _offline_config(tmp_path), tmp_path / "monitor.db") as d:
        d.wait_log("cycle: 2 feeds polled")
        assert d.stop() == 0
    log = d.log()
    cycles = log.count("cycle: 2 feeds polled, 0 new items, 0 hits, 2 failed")
    assert cycles >= 1
    assert log.count("WARNING monitor.poll: all 2 feeds failed name resolution (DNS, 2 hosts): "
                     "this machine looks offline") == cycles, log
    assert "DNS lookup failed" not in log, log


def test_a_broken_feed_stored_as_ok_before_the_upgrade_is_parsed_again(
        tmp_path: Path, server: FeedServer) -> None:
    from sqlite_utils import Database

    from monitor.migrations import migrations

    server.put("/broken", BROKEN, RSS)
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "broken", "name": "Broken", "url": server.url("/broken")}], topics=False)
    db = tmp_path / "monitor.db"
    old = Database(db)
    migrations.apply(old, stop_before="m004_feed_health")
    # What the poll before this change stored: a success with the document's
    # validators and hash, no bozo reason and no item.
    served = server.files["/broken"]
    old["feeds"].insert({"id": "broken", "url": server.url("/broken"),
                         "config_url": server.url("/broken"), "name": "Broken", "active": 1,
                         "etag": served.etag, "last_modified": served.last_modified,
                         "body_hash": "0" * 64, "last_success_at": "2026-01-01T00:00:00Z",
                         "error_count": 0, "moved_count": 0})
    old.close()
    polled = poll(config, db)["broken"]
    assert (polled["status"], polled["http_status"]) == ("failed", 200)
    assert polled["error"]["kind"] == "parse"
