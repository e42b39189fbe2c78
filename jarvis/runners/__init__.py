"""Task types and their runners: the registry (every task type once), local runners, remote adapters, media I/O."""
