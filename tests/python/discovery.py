"""The discovery meta-tools through the gateway with the official MCP Python SDK (a 2025
session), for tests/integration/meta_tools.rs.

Usage: discovery.py URL SELECT UNSELECTED
Lists the tools, calls discover_tools, selects the tools in SELECT (a JSON list) with
select_tools until the gateway's notifications/tools/list_changed arrives on the session's
stream, lists again, calls the first selected tool and UNSELECTED, tries a bad selection, and
prints one JSON object with what it saw."""

import asyncio
import json
import sys

from mcp import Client


def texts(r):
    return [getattr(x, "text", None) for x in r.content]


async def main(url: str, select: list, unselected: str) -> None:
    changed = asyncio.Event()

    async def on_message(msg):
        m = getattr(msg, "root", msg)
        if getattr(m, "method", None) == "notifications/tools/list_changed":
            changed.set()

    out = {}
    async with Client(url, mode="legacy", message_handler=on_message) as c:
        first = await c.list_tools()
        out["first"] = sorted(t.name for t in first.tools)
        r = await c.call_tool("discover_tools", {})
        out["discovered"] = {s["name"]: len(s["tools"]) for s in json.loads(texts(r)[0])["servers"]}
        # The session's GET stream may still be opening: select again (it is idempotent) until
        # the notification arrives, a bounded number of times.
        for _ in range(15):
            r = await c.call_tool("select_tools", {"tools": select})
            out["selected"] = json.loads(texts(r)[0])
            try:
                await asyncio.wait_for(changed.wait(), 2)
                break
            except asyncio.TimeoutError:
                continue
        out["notified"] = changed.is_set()
        second = await c.list_tools()
        out["second"] = sorted(t.name for t in second.tools)
        r = await c.call_tool(select[0], {"from": "python"})
        out["call_selected"] = {"is_error": r.is_error, "text": texts(r)}
        r = await c.call_tool(unselected, {"from": "python"})
        out["call_unselected"] = {"is_error": r.is_error, "text": texts(r)}
        r = await c.call_tool("select_tools", {"tools": ["no_such_tool"]})
        out["bad_select"] = {"is_error": r.is_error, "text": texts(r)}
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]))
