"""Remote adapters: one InferenceClient call per task type, and its result as Jarvis outputs."""
