"""Copy a MySQL/MariaDB account's grants to another account, from ``SHOW GRANTS`` output.

The server prints each grant with its identifiers already quoted, so a line is replayed as
is, except for the grantee, which is located exactly (the server's own quoting of the base
account) and replaced by the new account quoted the same way. Lines that carry account
options (the password hash, REQUIRE, resource limits) are never replayed, and the text of a
line is never put into an error message: MariaDB includes the password hash in it.
"""

from __future__ import annotations

from sikker.engines.base import ProviderError

_KEPT_TAILS = ("", " WITH GRANT OPTION", " WITH ADMIN OPTION")
_ACCOUNT_LINE = "GRANT USAGE ON *.*"


def quote_identifier(name: str) -> str:
    """A backtick-quoted identifier, as SHOW GRANTS prints it."""
    return "`" + name.replace("`", "``") + "`"


def account(user: str, host: str = "%") -> str:
    """``user``@``host`` quoted as SHOW GRANTS prints the grantee."""
    return f"{quote_identifier(user)}@{quote_identifier(host)}"


def retarget(line: str, base_user: str, new_user: str) -> str | None:
    """The statement granting ``new_user`` what ``line`` grants ``base_user``; None to skip it.

    Raises ProviderError for a line it cannot copy faithfully.
    """
    old, new = account(base_user), account(new_user)
    if line.startswith("GRANT "):
        at = line.rfind(" TO " + old)
        if at < 0:
            raise ProviderError(f"cannot read a grant of {base_user!r}: unexpected grantee")
        head, tail = line[:at], line[at + len(" TO " + old) :]
        if head == _ACCOUNT_LINE:
            # The account line: USAGE (which every account has) plus account options.
            if " REQUIRE " in tail or " WITH " in tail:
                raise ProviderError(
                    f"{base_user!r} has REQUIRE or resource-limit options that the agent does not copy;"
                    f" set them on {new_user!r} by hand, or remove them"
                )
            return None
        if tail not in _KEPT_TAILS:
            raise ProviderError(f"cannot copy a grant of {base_user!r}: unsupported clause")
        return f"{head} TO {new}{tail}"
    if line.startswith("SET DEFAULT ROLE ") and line.endswith(" FOR " + old):
        return line[: -len(old)] + new
    raise ProviderError(f"cannot copy the grants of {base_user!r}: unexpected SHOW GRANTS line")


def copy_statements(lines: list[str], base_user: str, new_user: str) -> list[str]:
    """Every statement needed to give ``new_user`` the grants in ``lines``."""
    statements = [retarget(line, base_user, new_user) for line in lines]
    return [s for s in statements if s is not None]
