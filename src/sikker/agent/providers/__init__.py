"""Database providers for the sync agent; see ``base`` for the protocol and error tree."""

from sikker.agent.providers.base import (
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
