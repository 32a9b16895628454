"""The official MCP Python SDK (`mcp` 2.x) as a 2026-07-28 client that answers sampling, elicitation
and roots, for tests/integration/asks.rs: the gateway asks it what a session-era upstream asks
during a call through input-required results, and the SDK's own retry loop answers them.

Usage: asks_client.py URL CALLS   (CALLS: a JSON list of [name, arguments])
Prints one JSON object: the protocol version, the names of the tools it is listed, and per call
its text contents, or its error."""

import asyncio
import json
import sys

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

asked = []


async def sampling(context, params):
    asked.append("sampling/createMessage")
    text = params.messages[-1].content.text
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"Hello from the LLM ({text})"), model="test-model"
    )


async def elicitation(context, params):
    asked.append("elicitation/create")
    return types.ElicitResult(action="accept", content={"name": "Ada", "username": "ada", "email": "ada@example.com"})


async def roots(context):
    asked.append("roots/list")
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project")])


async def main(url: str, calls: list) -> None:
    out = {}
    async with Client(
        url,
        mode="2026-07-28",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
    ) as c:
        out["version"] = c.session.protocol_version
        out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        for name, args in calls:
            try:
                r = await c.call_tool(name, args)
                out[name] = [getattr(x, "text", None) for x in r.content]
            except MCPError as e:
                out[name] = {"error": e.code, "message": str(e)}
    out["asked"] = asked
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
