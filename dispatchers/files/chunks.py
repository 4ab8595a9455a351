"""What the file service and its clients agree on: chunk sizes, the chunk encoding, the error kinds.

JSON carries no bytes, so a chunk travels as base64 text: 4 characters for
every 3 bytes, a third more on the wire (a 64 KiB chunk is an 87,384
character string). A chunk is at most :data:`MAX_CHUNK` bytes, so that its
message stays well under the default 1 MiB message size.

Every refusal is a :class:`~rpcengine.errors.RequestException` whose data
is ``{"error": KIND, "message": TEXT, "path": PATH}`` (``path`` when there
is one), ``KIND`` one of :data:`ERROR_KINDS`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from rpcengine.errors import RequestException
from rpcengine.wire import error_data

__all__ = [
    "DEFAULT_CHUNK",
    "ERROR_KINDS",
    "MAX_CHUNK",
    "MIN_CHUNK",
    "decode_chunk",
    "encode_chunk",
    "refusal",
]

#: Bytes per chunk unless the caller asks otherwise.
DEFAULT_CHUNK: Final = 64 << 10
#: The largest chunk either side sends or takes (as base64: 699,052 characters).
MAX_CHUNK: Final = 512 << 10
#: The smallest chunk a caller may ask for.
MIN_CHUNK: Final = 1 << 10

#: The ``error`` of every Error the file service answers with, and what it means.
ERROR_KINDS: Final = {
    "path_refused": "the path may not be used: absolute, '..', NUL, too long, or it leaves the root",
    "not_found": "nothing is at that path",
    "not_a_file": "the path is not a regular file (a directory, a FIFO, a device, a socket)",
    "not_a_directory": "the path is not a directory",
    "read_only": "the service is not writable",
    "checksum_mismatch": "the uploaded bytes do not have the checksum or size the client announced",
    "unknown_handle": "no upload has that handle (closed, aborted, expired, or another connection's)",
    "too_many_uploads": "the bound on uploads open at once is reached",
    "bad_offset": "a chunk that does not fit the upload (past its announced size)",
    "file_error": "the operating system refused (permission denied, disk full, ...)",
    "invalid_params": "the data is not what the method takes",
}


def refusal(kind: str, message: str, path: str | None = None) -> RequestException:
    """Return the RequestException to raise for a refusal of ``kind`` (one of :data:`ERROR_KINDS`)."""
    extra: dict[str, Any] = {} if path is None else {"path": path}
    return RequestException(error_data(kind, message, **extra))


def encode_chunk(data: bytes) -> str:
    """Return ``data`` as base64 text."""
    return base64.b64encode(data).decode("ascii")


def decode_chunk(text: object, limit: int = MAX_CHUNK) -> bytes:
    """Return the bytes of a base64 chunk; raise RequestException ``invalid_params`` if it is not one.

    A chunk longer than ``limit`` bytes is refused before it is decoded.
    """
    if type(text) is not str:
        raise refusal("invalid_params", "a chunk must be base64 text")
    if len(text) > (limit + 2) // 3 * 4:
        raise refusal("invalid_params", f"a chunk may hold at most {limit} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise refusal("invalid_params", "a chunk is not valid base64") from None
