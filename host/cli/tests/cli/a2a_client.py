"""The A2A test client: the official Python SDK (a2a-sdk) running steps against agents.

Usage: a2a_client.py KEY < steps.json. Each step is an object with `op` (card, send, get,
cancel, subscribe) and `url` (the agent's A2A URL); it prints one JSON result per step, in
order: the card, the stream responses, or the task, each as the SDK's protobuf messages
turned into JSON; or {"error": <exception class>, "message": ...} when the SDK raises.
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf import json_format, struct_pb2

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
)


def as_json(message):
    return json_format.MessageToDict(message)


def part(step):
    if "data" in step:
        value = struct_pb2.Value()
        json_format.ParseDict(step["data"], value)
        return Part(data=value)
    return Part(text=step["text"])


async def run(step, key):
    headers = {} if step.get("anonymous") else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        card = await A2ACardResolver(http, step["url"]).get_agent_card()
        if step["op"] == "card":
            return as_json(card)
        config = ClientConfig(
            httpx_client=http,
            # The SDK subscribes only with streaming on.
            streaming=step.get("streaming", step["op"] == "subscribe"),
            polling=step.get("return_immediately", False),
        )
        client = ClientFactory(config).create(card)
        op = step["op"]
        if op == "send":
            message = Message(
                role=Role.ROLE_USER,
                message_id=step.get("message_id") or str(uuid.uuid4()),
                context_id=step.get("context_id", ""),
                parts=[part(step)],
            )
            request = SendMessageRequest(
                message=message,
                configuration=SendMessageConfiguration(
                    accepted_output_modes=step.get("accept", [])
                ),
            )
            return {"events": [as_json(e) async for e in client.send_message(request)]}
        if op == "get":
            return as_json(await client.get_task(GetTaskRequest(id=step["task"])))
        if op == "cancel":
            return as_json(await client.cancel_task(CancelTaskRequest(id=step["task"])))
        if op == "subscribe":
            events = []
            request = SubscribeToTaskRequest(id=step["task"])
            async for event in client.subscribe(request):
                events.append(as_json(event))
                # Cancels the task while the stream is open: the stream shows it end.
                if step.get("cancel") and len(events) == 1:
                    await client.cancel_task(CancelTaskRequest(id=step["task"]))
            return {"events": events}
        raise ValueError(f"unknown op {op}")


async def main():
    key = sys.argv[1]
    results = []
    for step in json.load(sys.stdin):
        try:
            results.append(await run(step, key))
        except Exception as e:  # the test reads which error the SDK raised
            results.append({"error": type(e).__name__, "message": str(e)})
    print(json.dumps(results))


asyncio.run(main())
