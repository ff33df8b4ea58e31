"""`monitor feeds import` / `feeds export` through the real CLI, with real OPML
lists (a well-formed NetNewsWire export, ill-formed awesome-rss-feeds lists
with Cyrillic titles and folders) and a commented feeds.yaml."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml
from helpers import DATA, run_cli
from lxml import etree

from monitor.config import ID_PATTERN, load_config

OPML = DATA / "opml"
NNW = OPML / "netnewswire-subs.opml"  # 207 outlines, one URL twice
RUSSIA = OPML / "awesome-russia.opml"  # not well-formed: raw quotes inside an attribute
NEWS = OPML / "awesome-news.opml"  # not well-formed, one "News" folder

CONFIG = """\
# Desk feeds: hand-kept notes that an import must not lose.
settings:
  interval: 30m   # polite

feeds:
  # --- already followed
  - id: tass
    name: TASS
    url: HTTP://TASS.com/rss/v2.xml
    tags: [russia]

# --- topics below
topics: []
"""


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _import(config: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("feeds", "import", *args, "--json", config=config)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_import_real_lists_tags_ids_and_comments_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    russia = _import(config, str(RUSSIA), "--tag", "Press Review")
    # TASS is configured already (same URL, other case in scheme and host).
    assert len(russia["imported"]) == 12
    assert russia["present"] == [{"url": "http://tass.com/rss/v2.xml", "feed": "tass"}]
    lenta = russia["imported"][0]
    assert lenta == {"id": "lenta-ru-novosti", "url": "https://lenta.ru/rss",
                     "name": "Lenta.ru : Новости", "tags": ["press-review", "russia"]}
    news = _import(config, str(NEWS))
    assert len(news["imported"]) == 11
    assert all(f["tags"] == ["news"] for f in news["imported"])
    nnw = _import(config, str(NNW))
    assert len(nnw["imported"]) == 206 and len(nnw["duplicates"]) == 1
    # The list's folders (Weblogs, Programming, ...) become tags.
    folders = Counter(tuple(f["tags"]) for f in nnw["imported"])
    assert folders == {("weblogs",): 97, (): 68, ("programming",): 33, ("macintosh",): 5,
                       ("writers",): 3}

    loaded = load_config(config)
    ids = [f.id for f in loaded.feeds]
    assert len(ids) == 1 + 12 + 11 + 206 == len(set(ids))
    assert all(re.fullmatch(ID_PATTERN, i) for i in ids)
    text = config.read_text(encoding="utf-8")
    assert text.startswith(CONFIG.split("\n\n# --- topics")[0] + "\n  - id: lenta-ru-novosti\n")
    assert text.endswith("    tags: [writers]\n\n# --- topics below\ntopics: []\n")
    assert "  - id: lenta-ru-novosti\n    name: \"Lenta.ru : Новости\"\n" in text
    check = run_cli("check", config=config, db=tmp_path / "m.db")
    assert check.exit_code == 0, check.output
    assert "230 feeds" in check.output


def test_second_import_imports_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = run_cli("feeds", "import", str(NNW), config=config)
    assert first.exit_code == 0, first.output
    assert "imported 206 feed(s)" in first.output and "Not fetched yet" in first.output
    before = config.read_bytes()
    again = run_cli("feeds", "import", str(NNW), config=config)
    assert again.exit_code == 0, again.output
    assert "imported 0 feed(s)" in again.output and "207 already present" in again.output
    assert config.read_bytes() == before


def test_an_unusable_tag_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = run_cli("feeds", "import", str(RUSSIA), "--tag", "!!", config=config)
    assert result.exit_code == 2 and "not a usable tag" in result.output
    assert config.read_text(encoding="utf-8") == CONFIG


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = run_cli("feeds", "import", str(RUSSIA), "--dry-run", config=config)
    assert result.exit_code == 0, result.output
    assert "would import 12 feed(s)" in result.output and "lenta-ru-novosti" in result.output
    assert config.read_text(encoding="utf-8") == CONFIG


def test_unreadable_or_feedless_file_exits_2(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = run_cli("feeds", "import", str(tmp_path / "none.opml"), config=config)
    assert missing.exit_code == 2 and "cannot read" in missing.output
    empty = tmp_path / "empty.opml"
    empty.write_text("<opml version='2.0'><body><outline text='folder'/></body></opml>")
    none = run_cli("feeds", "import", str(empty), config=config)
    assert none.exit_code == 2 and "no feed outlines" in none.output
    assert config.read_text(encoding="utf-8") == CONFIG


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    source = _config(tmp_path)
    _import(source, str(RUSSIA), "--tag", "Press Review")
    _import(source, str(NEWS))
    out = tmp_path / "out.opml"
    exported = run_cli("feeds", "export", "--output", str(out), config=source)
    assert exported.exit_code == 0, exported.output
    stdout = run_cli("feeds", "export", config=source)
    assert stdout.stdout_bytes.startswith(b"<?xml") and b"lenta.ru/rss" in stdout.stdout_bytes
    etree.fromstring(out.read_bytes())  # well-formed

    empty = tmp_path / "empty"
    empty.mkdir()
    target = _config(empty, "feeds: []\n")
    report = _import(target, str(out))
    assert len(report["imported"]) == 24 and not report["invalid"]
    want = {(f.url, f.tags) for f in load_config(source).feeds}
    assert {(f.url, f.tags) for f in load_config(target).feeds} == want


HOSTILE = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><body>
<outline title='x: "y" &amp; z' type="rss"
  xmlUrl="https://example.org/a?x=1&amp;y=&quot;2&quot;"/>
<outline title="Line&#10;break&#13;and tab&#9;end" xmlUrl="https://example.org/b" />
<outline title="&lt;/outline&gt;&lt;script&gt;" xmlUrl="https://example.org/c"
  category="Tag &amp; &quot;More&quot;,/Folder/Sub Folder"/>
<outline title="js" xmlUrl="javascript:alert(document.cookie)"/>
<outline title="data" xmlUrl="data:text/html,&lt;script&gt;"/>
<outline title="file" xmlUrl="file:///etc/passwd"/>
<outline title="nl" xmlUrl="https://example.org/x&#10;  - id: evil&#10;    url: http://evil/"/>
<outline text="Folder &lt;b&gt;"><outline title="- id: evil" xmlUrl="https://example.org/d"/></outline>
</body></opml>
"""


def test_hostile_titles_and_urls_are_inert(tmp_path: Path) -> None:
    config = _config(tmp_path)
    opml = tmp_path / "hostile.opml"
    opml.write_text(HOSTILE, encoding="utf-8")
    report = _import(config, str(opml))
    assert [i["url"] for i in report["invalid"]] == [
        "javascript:alert(document.cookie)", "data:text/html,<script>", "file:///etc/passwd",
        "https://example.org/x\n  - id: evil\n    url: http://evil/"]
    assert all("only http and https" in i["reason"] for i in report["invalid"][:3])
    assert "whitespace or control characters" in report["invalid"][3]["reason"]
    text = run_cli("feeds", "import", str(opml), "--dry-run", config=config)
    assert "4 invalid" in text.output and "javascript:" in text.output
    assert "url: http://evil/" not in config.read_text(encoding="utf-8")

    loaded = load_config(config)
    by_url = {f.url: f for f in loaded.feeds}
    assert by_url['https://example.org/a?x=1&y="2"'].name == 'x: "y" & z'
    assert by_url["https://example.org/b"].name == "Line break and tab end"
    c = by_url["https://example.org/c"]
    assert c.name == "</outline><script>"
    assert c.tags == ("tag-more", "folder", "sub-folder")
    d = by_url["https://example.org/d"]
    assert d.name == "- id: evil" and d.id == "id-evil" and d.tags == ("folder-b",)
    # The file is still one feeds list with 1 + 4 mappings, nothing injected.
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert len(doc["feeds"]) == 5 and set(doc) == {"settings", "feeds", "topics"}

    exported = run_cli("feeds", "export", config=config).stdout_bytes
    root = etree.fromstring(exported)
    outlines = root.findall("body/outline")
    assert len(outlines) == 5 and not root.findall(".//script")
    titles = {o.get("xmlUrl"): o.get("title") for o in outlines}
    assert titles['https://example.org/a?x=1&y="2"'] == 'x: "y" & z'
    assert titles["https://example.org/c"] == "</outline><script>"
    assert b"<script>" not in exported
