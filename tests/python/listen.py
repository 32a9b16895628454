"""Opens a `subscriptions/listen` stream (2026-07-28) through the gateway with the official Python
SDK, prints "acknowledged", then prints each event it receives (one line each) until it has seen
COUNT of them or TIMEOUT seconds pass. Usage: listen.py URL COUNT TIMEOUT"""

import asyncio
import sys

import anyio
from mcp import Client


async def main(url: str, count: int, timeout: float) -> None:
    async with Client(url, mode="2026-07-28") as c:
        async with c.listen(tools_list_changed=True, prompts_list_changed=True) as sub:
            print("acknowledged", flush=True)
            seen = 0
            with anyio.move_on_after(timeout):
                async for event in sub:
                    print(type(event).__name__, flush=True)
                    seen += 1
                    if seen >= count:
                        break


asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
