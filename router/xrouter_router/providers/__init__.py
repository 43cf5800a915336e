"""Provider adapters: how to call each kind of upstream and read its answers."""

from __future__ import annotations

from ..config import Provider, ProviderType
from .anthropic import AnthropicAdapter
from .base import Adapter, StreamTranslator, Usage
from .mock import MockAdapter
from .openai import AzureAdapter, OpenAIAdapter

__all__ = ["Adapter", "StreamTranslator", "Usage", "make_adapter"]


def make_adapter(provider: Provider, api_key: str | None) -> Adapter:
    if provider.type is ProviderType.ANTHROPIC:
        return AnthropicAdapter(provider, api_key)
    if provider.type is ProviderType.AZURE_OPENAI:
        return AzureAdapter(provider, api_key)
    if provider.type is ProviderType.MOCK:
        return MockAdapter(provider, api_key)
    return OpenAIAdapter(provider, api_key)
