"""The front doors beyond chat completions: the Responses API (``responses``,
``responses_stream``) and the Anthropic Messages API (``messages``,
``messages_stream``) translated to and from chat completions; what they share
(``base``: the ``Front`` protocol, the translation ``Notes``, ``ChatChunks``); the
choice between passing a request through and translating it (``translate``); and the
endpoints besides ``LLMEndpoint`` (``endpoints``: Anthropic's error shape,
``count_tokens``, stored responses)."""
