from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIKKERKEY_API_URL", raising=False)
