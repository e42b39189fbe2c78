"""Thin consumers of the controller's event stream: the CLI, the web app, the HTTP API and MCP."""
