"""The baseline: a bare aiomqtt forwarder (subscribe → republish, no function).

Same client library, same TCP_NODELAY and QoS as edgefn's hub, so the ratio
against it measures what edgefn adds. Usage: forwarder.py PORT IN_TOPIC OUT_TOPIC
"""

from __future__ import annotations

import asyncio
import socket
import sys

import aiomqtt


async def forward(port: int, source: str, target: str) -> None:
    client = aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-forwarder",
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    client.pending_calls_threshold = 1_000_000
    async with client:
        await client.subscribe(source, qos=1)
        print("ready", flush=True)
        pending: set[asyncio.Task[None]] = set()
        async for message in client.messages:
            task = asyncio.create_task(client.publish(target, message.payload, qos=message.qos))
            pending.add(task)
            task.add_done_callback(pending.discard)


if __name__ == "__main__":
    asyncio.run(forward(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
