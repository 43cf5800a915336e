"""XRouter: an OpenAI-compatible LLM gateway."""
