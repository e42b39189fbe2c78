"""Where tasks run: the Executor protocol, the dispatcher's attempt plan per mode, local (with the
process-wide model cache), remote (Inference Providers) and Space executors."""
