"""Provider adapters: how to call each kind of upstream and read its answers."""

from __future__ import annotations

from ..clients import Clients
from ..config import Provider, ProviderType
from .anthropic import AnthropicAdapter
from .base import Adapter, StreamTranslator, Usage
from .bedrock import BedrockAdapter
from .google import GeminiAdapter, VertexAdapter
from .mock import MockAdapter
from .openai import AzureAdapter, OpenAIAdapter

__all__ = ["Adapter", "StreamTranslator", "Usage", "make_adapter"]

_TYPES: dict[ProviderType, type[Adapter]] = {
    ProviderType.OPENAI: OpenAIAdapter,
    ProviderType.OPENAI_COMPATIBLE: OpenAIAdapter,
    ProviderType.AZURE_OPENAI: AzureAdapter,
    ProviderType.ANTHROPIC: AnthropicAdapter,
    ProviderType.BEDROCK: BedrockAdapter,
    ProviderType.GEMINI: GeminiAdapter,
    ProviderType.VERTEX: VertexAdapter,
    ProviderType.MOCK: MockAdapter,
}


def make_adapter(provider: Provider, api_key: str | None, clients: Clients) -> Adapter:
    return _TYPES[provider.type](provider, api_key, clients)
