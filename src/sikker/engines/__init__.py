"""Database engines: one provider per engine, used by the sync agent (rotation) and by the
server (dynamic secrets). Imports nothing of Sikker but ``errors``; see ``base`` for the
protocol and the error tree."""

from sikker.engines.base import (
    Connection,
    Credentials,
    Provider,
    ProviderError,
    Strategy,
    UnsupportedStrategy,
    get_provider,
)

__all__ = [
    "Connection",
    "Credentials",
    "Provider",
    "ProviderError",
    "Strategy",
    "UnsupportedStrategy",
    "get_provider",
]
