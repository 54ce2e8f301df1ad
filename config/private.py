"""Files and directories only the chat's own user may touch: created 0700 / 0600, and checked before a secret is
read from them (a key another local user can read lets them forge anyone's session; a key they own or link
elsewhere lets them choose it). Used by the API for `secret_key` and by the launcher for its data directories."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotPrivate(RuntimeError):
    """A secret's file or directory that other users can reach; the message names it and the fix."""


def private_dir(path: Path) -> Path:
    """`path` as a directory, created 0700 if missing (missing parents get the umask's mode)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def check_private(path: Path, st: os.stat_result | None = None) -> None:
    """NotPrivate unless `path` (a file or a directory, not a link) belongs to this user and no one else may
    read, write or enter it."""
    st = st if st is not None else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise NotPrivate(f"{path} is a symbolic link; a secret must be a file of its own: replace the link with it")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise NotPrivate(f"{path} is not a regular file or directory: remove it and start again")
    if st.st_uid != os.geteuid():
        raise NotPrivate(
            f"{path} belongs to user id {st.st_uid}, not to the user running the chat ({os.geteuid()}): "
            f"remove it, or chown {os.geteuid()} {path}"
        )
    if st.st_mode & 0o077:
        mode = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise NotPrivate(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}): chmod {mode} {path}")


def read_private(path: Path, limit: int = 64 * 1024) -> str:
    """The text of a secret's file, opened without following a link and checked (check_private) on the open
    file itself, so it cannot be swapped between the check and the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_private(path)  # names the link
        raise
    with os.fdopen(fd, "rb") as file:
        check_private(path, os.fstat(fd))
        return file.read(limit).decode("utf-8", "replace")


def create_private(path: Path, text: str) -> bool:
    """Write `text` to a new file 0600 at `path`; False when a file (or a link) is already there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return True
