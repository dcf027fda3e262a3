"""Drives a running `omniforge serve`'s /mcp with the official MCP Python SDK (`mcp`, pinned in
.ci/run) for host/cli/tests/cli/mcp.rs.

    python3 mcp_client.py URL KEY MODE < steps.json

MODE is `2026-07-28` (stateless) or `legacy` (the initialize handshake). The steps are a JSON
list: {"list": true} lists every tool, following cursors; {"call": NAME, "arguments": {...}}
calls one; {"listen": SPEC} opens a `subscriptions/listen` stream for tool-list changes.
Prints one JSON list with a result per step: {"tools": [...], "pages": N} or
{"is_error": bool, "structured": ..., "text": "..."}, or {"error": {"code", "message"}} when
the server answered a JSON-RPC error; the last entry says which protocol version was spoken
and whether the server announced tool-list changes.

A listen SPEC may hold `trigger` ({"method", "path", "body", "key"}: an HTTP request made
once the stream is acknowledged, with KEY unless it names another), `ready_file` (created
once acknowledged), `until_closed` (wait for the stream's end rather than the first event)
and `wait_s` (how long to wait, default 10). Its result: {"honored": bool, "events": N,
"end": "event" | "graceful" | "lost" | "waited", "trigger_status": S, "tools": [names listed
afterwards]}.
"""

import asyncio
import json
import sys

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost


def tool_view(tool):
    hints = tool.annotations
    return {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
        "annotations": None if hints is None else {
            "read_only": hints.read_only_hint,
            "destructive": hints.destructive_hint,
            "idempotent": hints.idempotent_hint,
            "open_world": hints.open_world_hint,
        },
    }


async def listen(client, http, base, spec):
    """One listen step (see the module's doc)."""
    result = {"events": 0, "end": "waited"}
    try:
        async with client.listen(tools_list_changed=True) as sub:
            result["honored"] = bool(sub.honored.tools_list_changed)
            if "ready_file" in spec:
                open(spec["ready_file"], "w").close()
            trigger = spec.get("trigger")
            if trigger:
                headers = {"Authorization": f"Bearer {trigger['key']}"} if "key" in trigger else {}
                answer = await http.request(
                    trigger["method"], base + trigger["path"], json=trigger.get("body"), headers=headers
                )
                result["trigger_status"] = answer.status_code
            with anyio.move_on_after(spec.get("wait_s", 10)):
                async for _event in sub:
                    result["events"] += 1
                    if not spec.get("until_closed"):
                        result["end"] = "event"
                        break
                else:
                    result["end"] = "graceful"
    except SubscriptionLost:
        result["end"] = "lost"
    if result["end"] in ("event", "waited"):
        result["tools"] = [t.name for t in (await client.list_tools()).tools]
    return result


async def run(url, key, mode, steps):
    results = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            for step in steps:
                try:
                    if "listen" in step:
                        base = url.removesuffix("/mcp")
                        results.append(await listen(client, http, base, step["listen"]))
                    elif "list" in step:
                        tools, cursor, pages = [], None, 0
                        while True:
                            page = await client.list_tools(cursor=cursor)
                            pages += 1
                            tools += [tool_view(t) for t in page.tools]
                            cursor = page.next_cursor
                            if not cursor:
                                break
                        results.append({"tools": tools, "pages": pages})
                    else:
                        result = await client.call_tool(step["call"], step.get("arguments"))
                        text = "".join(getattr(c, "text", "") for c in result.content)
                        results.append({
                            "is_error": bool(result.is_error),
                            "structured": result.structured_content,
                            "text": text,
                        })
                except MCPError as e:
                    results.append({"error": {"code": e.code, "message": e.message}})
            tools = client.server_capabilities.tools
            results.append({
                "protocol_version": str(client.protocol_version),
                "tools_list_changed": bool(tools and tools.list_changed),
            })
    return results


def main():
    url, key, mode = sys.argv[1:4]
    steps = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(url, key, mode, steps))))


if __name__ == "__main__":
    main()
