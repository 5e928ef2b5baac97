"""One lock per folder that two npvae processes could both write: a run
folder (``.npvae.lock``) and a data set's folder while files are downloaded
into it (``.npvae-download.lock``).

The lock is the ``filelock`` package's (``flock`` on Unix), which the
kernel drops when its process dies, even by SIGKILL, so a crash leaves no
stale lock.  The lock file stays after release: removing it would let a
third process lock a new file while the first still holds the old.  A
lock path that is a symbolic link is refused, so that a planted link never
makes npvae create or open a file where it points; one this user may not open
for writing (another user's, read-only to the rest) is
named with what to do, not reported as a bare "Permission denied".
"""
import contextlib
import errno

import filelock

__all__ = ["hold_lock"]


@contextlib.contextmanager
def hold_lock(path, on_busy, error=ValueError):
    """Hold the lock file ``path`` for the block.

    Parameters
    ----------
    path : pathlib.Path
        The lock file, created if missing.
    on_busy : callable
        Called without arguments when another process holds the lock: it
        raises to give up, or returns to wait for the lock.
    error : type of ValueError
        Raised, naming ``path``, when ``path`` is a symbolic link, or a file
        this user may not open for writing (another user's lock file).
    """
    lock = filelock.FileLock(path)
    try:
        if path.is_symlink():
            raise OSError(errno.ELOOP, "a symbolic link", str(path))
        try:
            held = lock.acquire(timeout=0)
        except filelock.Timeout:
            on_busy()
            held = lock.acquire()
    except OSError as e:
        why = {errno.ELOOP: "is a symbolic link, not npvae's lock file; remove it",
               errno.EACCES: "cannot be opened for writing by this user (another user's "
                             "lock file?); run as its owner, or have it made writable "
                             f"(chmod a+w {path})"}.get(e.errno)
        if why is None:
            raise
        raise error(f"{path} {why}, or use another folder") from None
    with held:  # released on leaving the block
        yield
