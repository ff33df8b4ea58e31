"""The inflater: one Content-Encoding (gzip, deflate, none) undone in bounded
pieces, so the body cap bounds memory however well a body compresses.

Owns decompression. Must not read the network or decide the cap (the
client counts the pieces against it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from monitor.fetch.failure import _Failed, _short

# Largest piece of decompressed output produced at once: the body cap is
# checked after every piece, so memory never exceeds max_bytes + _PIECE.
_PIECE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class _Inflater:
    """Undoes one Content-Encoding in pieces of at most ``_PIECE`` bytes, so
    the body cap bounds memory however well the body compresses (httpx's own
    decoder inflates a whole network read at once: 64 KB can become 60 MB)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj = self._new(raw=False)
        self._started = False
        self._done = False

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater:
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return cls("identity")
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return cls(codings[0])
        raise _Failed("protocol", _short(f"unsupported Content-Encoding {header!r}"))

    def _new(self, *, raw: bool) -> zlib._Decompress:
        if raw:
            return zlib.decompressobj(-zlib.MAX_WBITS)
        # 47 = auto-detect a gzip or zlib header; servers mix them up.
        return zlib.decompressobj((zlib.MAX_WBITS | 32) if self._encoding != "deflate" else 15)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._encoding == "identity":
            if data:
                yield data
            return
        while data and not self._done:
            try:
                out = self._obj.decompress(data, _PIECE)
            except zlib.error:
                # "deflate" is often sent without the zlib header.
                if self._encoding != "deflate" or self._started:
                    raise
                self._obj, self._started = self._new(raw=True), True
                continue
            self._started = True
            if out:
                yield out
            data = self._next_member() if self._obj.eof else self._obj.unconsumed_tail

    def _next_member(self) -> bytes:
        rest = self._obj.unused_data
        if self._encoding != "deflate" and rest.startswith(_GZIP_MAGIC):
            self._obj = self._new(raw=False)
            return rest
        self._done = True  # trailing padding after the stream: ignored
        return b""
