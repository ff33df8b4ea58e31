"""Fixtures shared by the test modules: the one HTTP test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from feedserver import FeedServer, serve


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A FeedServer on 127.0.0.1 serving what the test puts or routes; stopped after the test.

    A module that serves the same files to all its tests overrides it with a fixture of
    the same name that asks for this one and puts them.
    """
    with serve() as srv:
        yield srv
