"""HuggingGPT's four stages (plan, select, execute, respond), the controller that runs them, and the records."""
