"""The side panel of the web app: the person's conversations (new, switch, rename, delete), where
they are kept, and the files of the open one. Every handler names the owner (the page's state, set
from the browser's id when the page opens), and the library refuses a conversation of anyone else."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from jarvis.config import Config
from jarvis.frontends.web.gradio_cache import in_cache
from jarvis.frontends.web.library import Library
from jarvis.session import Session

View = tuple[list[dict[str, Any]], str, str, Any, str]     # chat, files, conversation id, list, title


def resources_markdown(session: Session | None) -> str:
    items = session.store.list() if session else []
    if not items:
        return "_No files yet. Attach some, or ask for something to be generated._"
    rows = ["Refer to these names in your requests.", "", "| name | type | from |", "|---|---|---|"]
    rows += [f"| `{r.name}` | {r.type} | {r.origin} |" for r in items]
    return "\n".join(rows)


def where_kept(library: Library, config: Config) -> str:
    days = config.session.keep_days
    idle = f"{days:g} day{'s' if days != 1 else ''}"
    if library.saved:
        return (f"_Saved on this server for this browser only, and deleted after {idle} without use. "
                "Another browser (or a private window) starts with none._")
    return library.note or "_Not saved (session.store is off): they last while this page is open._"


@dataclass
class Panel:
    conversations: gr.Radio
    title: gr.Textbox
    new: gr.Button
    rename: gr.Button
    delete: gr.Button


def build_panel(library: Library, config: Config) -> Panel:
    """The conversation list and its buttons (inside the caller's gr.Sidebar)."""
    gr.Markdown("### 💬 Conversations")
    new = gr.Button("➕ New conversation", size="sm", elem_id="jarvis-new-conversation")
    conversations = gr.Radio(choices=[], value=None, show_label=False, elem_id="jarvis-conversations",
                             container=False)
    title = gr.Textbox(label="Title", max_lines=1, elem_id="jarvis-title", placeholder="Name this conversation")
    with gr.Row():
        rename = gr.Button("✏️ Rename", size="sm", elem_id="jarvis-rename")
        delete = gr.Button("🗑 Delete", size="sm", variant="stop", elem_id="jarvis-delete")
    gr.Markdown(where_kept(library, config), elem_id="jarvis-kept")
    return Panel(conversations, title, new, rename, delete)


def view(library: Library, config: Config, owner: str, conversation: str) -> View:
    """What the page shows for the owner's conversation (none: an empty chat)."""
    item = library.open(owner, conversation, config) if conversation else None
    if item is None:
        conversation = ""
    listing = gr.Radio(choices=library.choices(owner), value=conversation or None)
    return (in_cache(item.display, item.copies) if item else [], resources_markdown(item.session if item else None), conversation,
            listing, library.title(owner, conversation))


def wire_panel(panel: Panel, library: Library, config: Config, owner: gr.State, conversation: gr.State,
               chatbot: gr.Chatbot, resources: gr.Markdown) -> None:
    """The panel's events; each output shows the chosen conversation and the list."""
    shown = [chatbot, resources, conversation, panel.conversations, panel.title]

    def new(who: str) -> View:
        return view(library, config, who, "")

    def switch(chosen: str | None, who: str) -> View:
        return view(library, config, who, chosen or "")

    def rename(title: str, who: str, current: str) -> Any:
        library.rename(who, current, title)
        return gr.Radio(choices=library.choices(who), value=current or None)

    def delete(who: str, current: str) -> View:
        library.delete(who, current)
        return view(library, config, who, library.latest(who))

    panel.new.click(new, [owner], shown, api_name="new_conversation", queue=False)
    panel.conversations.input(switch, [panel.conversations, owner], shown, api_name="open_conversation")
    gr.on([panel.rename.click, panel.title.submit], rename, [panel.title, owner, conversation], [panel.conversations],
          api_name="rename_conversation")
    panel.delete.click(delete, [owner, conversation], shown, api_name="delete_conversation")
