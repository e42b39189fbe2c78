"""The Gradio web app: the page, event rendering, per-browser sessions and credentials."""
