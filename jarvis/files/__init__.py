"""A session's files: the store, media types, content checks and the guarded URL fetcher."""
