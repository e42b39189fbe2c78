"""Jarvis as an MCP server (streamable HTTP at /gradio_api/mcp/, beside the web app and the HTTP API).

tools.py says what each tool takes (its argument model is the schema agents see); content.py turns
what agents send into staged media and what a run produced into MCP content; server.py serves the
protocol and drives runs through the HTTP API's machinery (jarvis.frontends.http.runs).
"""
