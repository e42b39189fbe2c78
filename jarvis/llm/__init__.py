"""The LLM behind the planner, the model choice and the answer, and its prompts as text files."""
