"""A real MCP server built with the official Python SDK (`mcp` 2.x MCPServer), which speaks
2026-07-28 (stateless) and the 2025 session protocol: the gateway's "2026-era" upstream in
tests/integration/two_generations.rs. Usage: upstream.py PORT"""

import sys

import uvicorn
from mcp.server import MCPServer

app = MCPServer("py-upstream")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


uvicorn.run(app.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
