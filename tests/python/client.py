"""The official MCP Python SDK (`mcp` 2.x) as a gateway client, for tests/integration/two_generations.rs.

Usage: client.py URL MODE [CALLS]  (MODE: auto | legacy | 2026-07-28)
Lists the tools, calls `py_add`, `py_shout` and `ev_echo` (or the calls in CALLS, a JSON list of
[name, arguments]), and prints one JSON object with what it saw, including the protocol version
the SDK settled on."""

import asyncio
import json
import sys

from mcp import Client
from mcp.shared.exceptions import MCPError


async def main(url: str, mode: str, calls: list | None) -> None:
    out = {}
    async with Client(url, mode=mode) as c:
        out["version"] = c.session.protocol_version
        tools = await c.list_tools()
        out["tools"] = sorted(t.name for t in tools.tools)
        if calls is not None:
            for name, args in calls:
                r = await c.call_tool(name, args)
                out[name] = [getattr(x, "text", None) for x in r.content]
            print(json.dumps(out))
            return
        r = await c.call_tool("py_add", {"a": 20, "b": 22})
        out["py_add"] = [getattr(x, "text", None) for x in r.content]
        r = await c.call_tool("py_shout", {"text": "hello"})
        out["py_shout"] = [getattr(x, "text", None) for x in r.content]
        r = await c.call_tool("ev_echo", {"message": "from python"})
        out["ev_echo"] = [getattr(x, "text", None) for x in r.content]
        try:
            r = await c.call_tool("py_nope", {})
            out["unknown"] = "is_error" if r.is_error else "ok"
        except MCPError as e:
            out["unknown"] = e.code
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None))
