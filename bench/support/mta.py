"""The sending side of the inbound bench, in a process of its own (so that its CPU is neither
the daemon's nor the benchmark's, and can be told apart): `connections` SMTP sessions to the
daemon's listener, each sending its share of the messages one after the other, as an MTA
relaying a busy reply domain does.

    python bench/support/mta.py PORT MESSAGES_FILE CONNECTIONS

MESSAGES_FILE: the messages, pickled as a list of (recipient address, bytes); session i sends
messages i, i + CONNECTIONS, i + 2 × CONNECTIONS, ... Prints "ready" once every session is
open, sends on a line from stdin, then prints "ACCEPTED SECONDS"."""

from __future__ import annotations

import asyncio
import pickle
import sys
import time

import aiosmtplib


async def session(port: int) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                           local_hostname="mta.bench", timeout=30)
    await smtp.connect()
    return smtp


async def send(smtp: aiosmtplib.SMTP, messages: list[tuple[str, bytes]]) -> int:
    accepted = 0
    for address, data in messages:
        errors, _ = await smtp.sendmail("alice@msp.bench", [address], data)
        accepted += not errors
    return accepted


async def main(port: int, messages: list[tuple[str, bytes]], connections: int) -> None:
    sessions = [await session(port) for _ in range(connections)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = time.perf_counter()
    accepted = sum(await asyncio.gather(*(send(s, messages[i::connections])
                                          for i, s in enumerate(sessions))))
    seconds = time.perf_counter() - started
    for s in sessions:
        await s.quit()
    print(f"{accepted} {seconds}", flush=True)


if __name__ == "__main__":
    with open(sys.argv[2], "rb") as f:
        loaded: list[tuple[str, bytes]] = pickle.load(f)
    asyncio.run(main(int(sys.argv[1]), loaded, int(sys.argv[3])))
