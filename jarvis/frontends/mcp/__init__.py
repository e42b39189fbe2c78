"""Jarvis as an MCP server (streamable HTTP at /gradio_api/mcp/, beside the web app and the HTTP API).

tools.py says what each tool takes and what the data tools return (their models are the input and
output schemas agents see); content.py turns what agents send into staged media and what a run
produced into MCP content (and structured content); server.py serves the
protocol and drives runs through the HTTP API's machinery (jarvis.frontends.http.runs).
"""
