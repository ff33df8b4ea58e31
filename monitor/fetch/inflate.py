"""The inflater: one Content-Encoding (gzip, deflate, br, none) undone in
bounded pieces, so the body cap bounds memory however well a body compresses.
Brotli is optional: ``br`` is taken only when the ``brotli`` package (the
``brotli`` extra) imports and can bound its output (``BROTLI``).

Owns decompression. Must not read the network or decide the cap (the
client counts the pieces against it).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Iterator
from typing import Any

from monitor.fetch.failure import _Failed, _short

# Largest piece of decompressed output produced at once: the body cap is
# checked after every piece, so memory never exceeds max_bytes + _PIECE.
_PIECE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_MISMATCH = "body does not match its Content-Encoding"


def _load_brotli() -> Any:
    try:
        module = importlib.import_module("brotli")
    except ImportError:
        return None
    # output_buffer_limit and can_accept_more_data came with brotli 1.2; before,
    # one process() call inflated a whole network read at once (the bomb the cap
    # is for), so an older brotli is treated as absent.
    if not hasattr(module.Decompressor, "can_accept_more_data"):
        return None
    return module


_brotli = _load_brotli()
# True when ``br`` can be inflated under the cap, so it may be offered.
BROTLI = _brotli is not None


class _Inflater:
    """Undoes one Content-Encoding in pieces of at most ``_PIECE`` bytes, so
    the body cap bounds memory however well the body compresses (httpx's own
    decoder inflates a whole network read at once: 64 KB can become 60 MB)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj = self._new(raw=False)
        self._br: Any = _brotli.Decompressor() if encoding == "br" else None
        self._started = False
        self._done = False

    @classmethod
    def for_encoding(cls, header: str, *, brotli: bool = BROTLI) -> _Inflater:
        """The inflater for a Content-Encoding header; ``brotli`` says whether
        ``br`` is taken (it is only when the package can bound its output)."""
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return cls("identity")
        zlib_codings = ("gzip", "x-gzip", "deflate")
        supported = (*zlib_codings, "br") if brotli and _brotli is not None else zlib_codings
        if len(codings) == 1 and codings[0] in supported:
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
        if self._br is not None:
            yield from self._feed_br(data)
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

    def _feed_br(self, data: bytes) -> Iterator[bytes]:
        # A piece may pass output_buffer_limit by one of brotli's own output
        # blocks (measured: 96 KB for a 64 KB limit), still a fixed bound.
        while not self._br.is_finished():
            try:
                out = self._br.process(data, output_buffer_limit=_PIECE)
            except _brotli.error as exc:
                raise _Failed("protocol", _short(f"{_MISMATCH}: {exc}")) from exc
            data = b""  # the decoder keeps what it could not take yet
            if out:
                yield out
            if self._br.can_accept_more_data():
                return
        # Bytes after the end of the stream are ignored, as gzip's padding is.

    def finish(self) -> None:
        """Called after the last network read: a brotli stream must have ended
        (a cut one would otherwise pass for a short body)."""
        if self._br is not None and not self._br.is_finished():
            raise _Failed("protocol", f"{_MISMATCH}: brotli stream cut short")
