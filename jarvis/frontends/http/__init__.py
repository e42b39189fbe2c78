"""The HTTP API: HuggingGPT's server-mode routes and OpenAI-compatible routes, with auth, files and limits."""
