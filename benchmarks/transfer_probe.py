"""What moving a large body between the frontend and a worker costs, two ways, on this machine: through a Unix
socket pair (what the server does: one send and one receive on each side of a round trip) or through shared memory
(one copy in by the sender, one copy out by the receiver, no system call). The question it answers: how much of the
100 KiB echo's CPU per request would shared memory between frontend and worker save.

    python -m benchmarks.transfer_probe --size 102400 --count 20000

Both processes are pinned to one core (as the benchmark pins the server); CPU time is the processes' own (user +
system), so the numbers hold on a busy machine too.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import socket
import sys
import time

SLOTS = 32


def _receive(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        count = sock.recv_into(view[got:])
        if count == 0:
            raise ConnectionError("the peer closed the socket")
        got += count


def socket_round_trip_us(size: int, count: int, core: int) -> dict[str, float]:
    """A body to a child process and back through a socket pair: CPU per round trip of each side."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    child = os.fork()
    if child == 0:  # the "worker": receives each body whole and sends it back
        os.sched_setaffinity(0, {core})
        ours.close()
        buffer = memoryview(bytearray(size))
        for _ in range(count):
            _receive(theirs, buffer)
            theirs.sendall(buffer)
        os._exit(0)
    theirs.close()
    os.sched_setaffinity(0, {core})
    body, buffer = os.urandom(size), memoryview(bytearray(size))
    before = time.process_time()
    for _ in range(count):
        ours.sendall(body)
        _receive(ours, buffer)
    sender = time.process_time() - before
    os.waitpid(child, 0)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours.close()
    return {"sender_us": sender / count * 1e6, "receiver_us": (usage.ru_utime + usage.ru_stime) / count * 1e6}


def shared_memory_round_trip_us(size: int, count: int) -> float:
    """The same round trip through shared memory: each direction one copy in and one copy out (a receiver that
    hands the handler ``bytes`` must copy), in one process since no system call is involved."""
    area = mmap.mmap(-1, size * SLOTS)
    view = memoryview(area)
    body = os.urandom(size)
    before = time.process_time()
    for index in range(count):
        start = (index % SLOTS) * size
        view[start : start + size] = body  # the frontend writes the request
        request = bytes(view[start : start + size])  # the worker takes it
        view[start : start + size] = request  # the worker writes the answer
        body = bytes(view[start : start + size])  # the frontend takes it
    spent = time.process_time() - before
    view.release()
    area.close()
    return spent / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer_probe", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100 * 1024, help="bytes per body (default 100 KiB)")
    parser.add_argument("--count", type=int, default=20000, help="round trips (default 20000)")
    parser.add_argument("--core", type=int, default=0, help="the core both processes run on")
    args = parser.parse_args(argv)
    sockets = socket_round_trip_us(args.size, args.count, args.core)
    shared = shared_memory_round_trip_us(args.size, args.count)
    result = {
        "size": args.size,
        "count": args.count,
        "socket_round_trip_us": round(sockets["sender_us"] + sockets["receiver_us"], 1),
        "socket_frontend_us": round(sockets["sender_us"], 1),
        "socket_worker_us": round(sockets["receiver_us"], 1),
        "shared_memory_round_trip_us": round(shared, 1),
    }
    result["saving_us"] = round(result["socket_round_trip_us"] - result["shared_memory_round_trip_us"], 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
