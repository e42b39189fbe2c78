"""Jarvis: an LLM plans a request into tasks, picks Hugging Face models, runs them, and answers."""
__version__ = "0.1.0"
