"""Local HTTP servers speaking the Anthropic Messages API and the OpenAI chat completions API (tests only)."""
