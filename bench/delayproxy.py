#!/usr/bin/env python3
"""A delay line for TCP on loopback (these machines have no netem).

usage: delayproxy.py LISTEN_PORT TARGET_PORT ONE_WAY_MS COUNTS_FILE

Listens on 127.0.0.1:LISTEN_PORT; every connection is forwarded to
127.0.0.1:TARGET_PORT, each direction delayed by ONE_WAY_MS (so the round
trip grows by twice that). A delay line, not stop-and-wait: every chunk read
is scheduled for forwarding at its arrival time + the delay, and reading
goes on meanwhile, so throughput is what the ends make of it (up to a
bandwidth-delay product of QUEUE_MAX bytes per direction, where reading
pauses). Bytes forwarded each way are written to COUNTS_FILE ("up down",
client->target and back) every second and at SIGTERM.
"""
import asyncio
import collections
import signal
import sys

QUEUE_MAX = 64 << 20


class Stats:
    up = 0
    down = 0


async def pump(reader, writer, delay, stats, attr):
    q = collections.deque()
    queued = 0
    more = asyncio.Event()
    room = asyncio.Event()
    room.set()
    loop = asyncio.get_running_loop()

    async def forward():
        nonlocal queued
        while True:
            while not q:
                more.clear()
                await more.wait()
            due, data = q.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            # Everything already due goes out in one write.
            chunks = [data]
            while q and q[0][1] is not None and q[0][0] <= loop.time():
                chunks.append(q.popleft()[1])
            out = b"".join(chunks)
            writer.write(out)
            setattr(stats, attr, getattr(stats, attr) + len(out))
            queued -= len(out)
            if queued < QUEUE_MAX:
                room.set()
            await writer.drain()

    fwd = asyncio.ensure_future(forward())
    try:
        while True:
            await room.wait()
            data = await reader.read(256 * 1024)
            q.append((loop.time() + delay, data if data else None))
            more.set()
            if not data:
                break
            queued += len(data)
            if queued >= QUEUE_MAX:
                room.clear()
        await fwd
    except (ConnectionError, asyncio.CancelledError):
        fwd.cancel()
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    listen, target, one_way_ms, counts = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    delay = one_way_ms / 1000.0
    stats = Stats()

    async def handle(creader, cwriter):
        try:
            treader, twriter = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(pump(creader, twriter, delay, stats, "up"),
                                 pump(treader, cwriter, delay, stats, "down"),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass

    def dump():
        with open(counts + ".new", "w") as f:
            f.write("%d %d\n" % (stats.up, stats.down))
        import os
        os.replace(counts + ".new", counts)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", listen, reuse_address=True)
    dump()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        dump()
    server.close()
    dump()


if __name__ == "__main__":
    asyncio.run(main())
