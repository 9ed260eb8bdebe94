"""Where a file audit stream may write: a relative path inside the stream directory (pure).

This is the lexical half of the rule; the sink does the other half on disk (it resolves
symlinks before writing and opens every path component with ``O_NOFOLLOW``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

OUTSIDE = "a file stream writes only inside the stream directory"


def confine(given: str, directory: PurePosixPath) -> PurePosixPath:
    """``given`` as a path relative to ``directory`` (absolute), or ValueError with the reason.

    ``given`` is a file name, a relative path, or an absolute path inside ``directory``;
    ``..`` is refused wherever it appears, as is anything that names the directory itself.
    """
    if not directory.is_absolute():
        raise ValueError("the stream directory must be an absolute path")
    if not given or "\x00" in given:
        raise ValueError(f"{OUTSIDE}: give a file name such as audit.jsonl")
    path = PurePosixPath(given)
    if path.is_absolute():
        if not path.is_relative_to(directory):
            raise ValueError(f"{OUTSIDE} ({directory}): give a file name such as audit.jsonl")
        path = path.relative_to(directory)
    if ".." in path.parts:
        raise ValueError(f"{OUTSIDE}: '..' is not allowed in the path")
    if not path.parts:
        raise ValueError(f"{OUTSIDE}: give a file name such as audit.jsonl, not the directory")
    return path
