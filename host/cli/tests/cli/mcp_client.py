"""Drives a running `omniforge serve`'s /mcp with the official MCP Python SDK (`mcp`, pinned in
.ci/run) for host/cli/tests/cli/mcp.rs.

    python3 mcp_client.py URL KEY MODE < steps.json

MODE is `2026-07-28` (stateless) or `legacy` (the initialize handshake). The steps are a JSON
list: {"list": true} lists every tool, following cursors; {"call": NAME, "arguments": {...}}
calls one. Prints one JSON list with a result per step: {"tools": [...], "pages": N} or
{"is_error": bool, "structured": ..., "text": "..."}, or {"error": {"code", "message"}} when
the server answered a JSON-RPC error.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client


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


async def run(url, key, mode, steps):
    results = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            for step in steps:
                try:
                    if "list" in step:
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
            results.append({"protocol_version": str(client.protocol_version)})
    return results


def main():
    url, key, mode = sys.argv[1:4]
    steps = json.load(sys.stdin)
    print(json.dumps(asyncio.run(run(url, key, mode, steps))))


if __name__ == "__main__":
    main()
