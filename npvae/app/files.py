"""Atomic file writing: a file is either its old content or the whole new one.

Content goes to a temporary file beside the target (named
``.<name>.<random>.tmp``), is flushed to disk, and is renamed over the
target. Errors name the target, not the temporary file.
"""
import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_all", "backups"]


def _raise_naming(err, path):
    """Raise ``err`` as an OSError of the same kind that names ``path``: a
    full disk (ENOSPC, EFBIG) reports no file name, a failed rename the
    temporary one.  An error without an errno (a ``write``'s own) stays."""
    if err.errno is None:
        raise err
    raise type(err)(err.errno, err.strerror or str(err), str(path)) from err


def _write_temp(path, write):
    """Write ``write(file)`` to a new temporary file beside ``path``, with
    the permissions a plain ``open`` would give it; return its path."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        _raise_naming(err, path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            _raise_naming(err, path)
        raise
    return tmp


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _replace(tmp, path):
    try:
        os.replace(tmp, path)
    except OSError as err:
        _raise_naming(err, path)


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path`` opened for
    binary writing, then rename it to ``path``; return ``path``.

    The rename is atomic, so ``path`` is always either its old content or
    the complete new one; the temporary file is removed on any error.
    """
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(writes):
    """Write several files so that an error leaves every one as it was.

    Parameters
    ----------
    writes : sequence of (path, write)
        ``write(file)`` is called on a temporary file for each ``path``.

    Returns
    -------
    list of pathlib.Path
        The paths, in order.

    Every file is written in full before the first rename; the renames
    then run in order, and if one fails (an error, a Ctrl-C) the files
    already renamed get their previous content back (or are removed, if
    they did not exist before).  Only a process killed between two
    renames can leave some files new and some old.
    """
    paths = [Path(p) for p, _ in writes]
    temps, renamed = [], []   # renamed: (path, backup of its old content)
    try:
        for path, write in writes:
            temps.append(_write_temp(path, write))
        for path, tmp in zip(paths, temps):
            # A lone file needs no backup: its rename either happens or not.
            backup = _backup(path) if len(paths) > 1 else _KEEP
            try:
                _replace(tmp, path)
            except BaseException:
                _discard(backup)
                raise
            renamed.append((path, backup))
    except BaseException:
        for path, backup in reversed(renamed):
            if backup is _ABSENT:
                _remove(path)
            elif backup is not _KEEP:
                os.replace(backup, path)
        raise
    finally:
        for tmp in temps:
            _remove(tmp)
        for _, backup in renamed:
            _discard(backup)
    return paths


def backups(path):
    """The hidden files beside ``path`` that may hold an earlier content of
    it: the backups :func:`atomic_write_all` takes before its renames (and
    its temporary files), left behind only by a process killed midway."""
    path = Path(path)
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
                  if p.is_file() and not p.is_symlink())


_ABSENT, _KEEP = object(), object()   # no file before; no backup taken


def _discard(backup):
    if isinstance(backup, Path):
        _remove(backup)


def _backup(path):
    """A second name for ``path``'s current content (a hard link, or a
    copy where links are not supported), or ``_ABSENT``."""
    if not path.is_file():
        return _ABSENT
    backup = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        os.link(path, backup)
    except FileNotFoundError:
        return _ABSENT
    except OSError:
        try:
            shutil.copy2(path, backup)
        except OSError as err:
            _remove(backup)
            _raise_naming(err, path)
    return backup
