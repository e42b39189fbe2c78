"""jarvis/llm"""
