"""Files: serve a directory and move files to and from it, in bounded chunks, jailed to its root.

* :class:`FileService` is the dispatcher (``files.list``, ``files.stat``,
  ``files.read``, ``files.checksum``, and, when writable,
  ``files.open_write``, ``files.write``, ``files.close_write``,
  ``files.abort_write``);
* :func:`get_file` and :func:`put_file` transfer one file over an Engine,
  with a progress callback and a SHA-256 checked at the end;
* :mod:`~dispatchers.files.jail` keeps every path inside the root,
  :mod:`~dispatchers.files.uploads` holds the files being written,
  :mod:`~dispatchers.files.chunks` the chunk encoding and the error kinds.
"""

from dispatchers.files.chunks import DEFAULT_CHUNK, ERROR_KINDS, MAX_CHUNK
from dispatchers.files.client import get_file, put_file
from dispatchers.files.jail import NAME_MAX, PATH_MAX, Jail
from dispatchers.files.service import FileService

__all__ = [
    "DEFAULT_CHUNK",
    "ERROR_KINDS",
    "MAX_CHUNK",
    "NAME_MAX",
    "PATH_MAX",
    "FileService",
    "Jail",
    "get_file",
    "put_file",
]
