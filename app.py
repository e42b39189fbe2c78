"""Hugging Face Spaces entry point: builds the web UI from config and launches it.

Listens where Spaces expect it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are respected).
"""
import sys

from jarvis.config import load_config
from jarvis.errors import ConfigError


def main() -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"error: bad config: {exc}", file=sys.stderr)
        return 2
    from jarvis.frontends.web.app import launch
    return launch(config)


if __name__ == "__main__":
    sys.exit(main())
