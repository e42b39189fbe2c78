"""Where the conversation database lives. `session.store` (or JARVIS_SESSION_STORE) names a file;
"auto" means the user's data directory ($XDG_DATA_HOME or ~/.local/share on Linux, Application
Support on macOS, %LOCALAPPDATA% on Windows; then jarvis/conversations.db), and on a Hugging Face Space the persistent /data
volume when it is attached and writable; "" or "off" means conversations are not saved."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jarvis.config import Config

FILE_NAME = "conversations.db"
SPACE_VOLUME = Path("/data")
OFF = ("", "off", "none", "false", "no")


def _data_dir() -> Path:
    """The user's data directory, as platformdirs has it (without the dependency)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "jarvis"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "jarvis"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "jarvis"


def store_path(config: Config, space_volume: Path = SPACE_VOLUME) -> Path | None:
    """The database file the web app should use, or None when saving is off."""
    value = config.session.store.strip()
    if value.lower() in OFF:
        return None
    if value.lower() != "auto":
        return Path(value).expanduser()
    if os.environ.get("SPACE_ID") and space_volume.is_dir() and os.access(space_volume, os.W_OK):
        return space_volume / "jarvis" / FILE_NAME
    return _data_dir() / FILE_NAME
