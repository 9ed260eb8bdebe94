"""The CLI's consoles are made on first use (``sikker server`` runs without rich), then kept."""

from __future__ import annotations

import sys

import pytest

from sikker.cli import output


def test_the_consoles_are_made_on_first_use_and_then_kept() -> None:
    assert output.console is output.console
    assert output.err_console is not output.console
    assert output.err_console.file is sys.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = output.nothing  # type: ignore[attr-defined]
