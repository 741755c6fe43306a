#!/usr/bin/python3
"""A scriptable SMTP server for the fault tests (Python standard library only).

    /usr/bin/python3 test/faults/smtp_server.py --port P --maildir DIR \
        --mode-file FILE [--events FILE]

It speaks just enough ESMTP for libesmtp (EHLO with 8BITMIME, no PIPELINING,
no STARTTLS) and behaves as the first word of FILE says.  The file is read
again at every command, so a test switches behaviour without a restart:

    ok          store the message in the Maildir DIR (new/) and answer 250
    tempfail    answer 451 to the end of DATA; nothing is stored
    permfail    answer 550 to RCPT TO (no such user); nothing is stored
    stall       after the end of DATA never answer, until the client leaves;
                nothing is stored
    slow:N      store the message, then answer 250 after N seconds (a slow
                but working server; a client that gives up earlier and
                retries delivers the message twice)

"Down" is this process not running: stop it.

Events, one JSON object a line, go to --events (default: none):
    {"t": epoch, "ev": "connect"}
    {"t": ..., "ev": "data_end", "mode": "stall", "message_id": "<...>"}
    {"t": ..., "ev": "reply", "code": 250, "message_id": "<...>"}
    {"t": ..., "ev": "client_left", "after_data_end": 1.0, "message_id": "<...>"}
    {"t": ..., "ev": "disconnect", "stage": "quit"}
so a test can see how long a client waited for an answer before it gave up
(client_left: it hung up while a stall or slow:N answer was pending).
"""
import argparse
import asyncio
import email.parser
import email.policy
import json
import mailbox
import os
import signal
import sys
import time

ARGS = None


def mode():
    try:
        with open(ARGS.mode_file) as f:
            words = f.read().split()
        return words[0] if words else "ok"
    except OSError:
        return "ok"


def event(**kw):
    if not ARGS.events:
        return
    kw = dict({"t": time.time()}, **kw)
    with open(ARGS.events, "a") as f:
        f.write(json.dumps(kw) + "\n")


def message_id(data):
    try:
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
        return (msg.get("Message-ID") or "").strip()
    except Exception:   # a test tool: never die on a strange message
        return ""


def store(data):
    box = mailbox.Maildir(ARGS.maildir, factory=None, create=True)
    box.add(data)


async def reply(writer, text):
    writer.write(text.encode() + b"\r\n")
    await writer.drain()


async def client_leaves(reader, secs):
    """Wait up to secs for the client to close: seconds it took, or None."""
    t0 = time.time()
    while True:
        left = t0 + secs - time.time()
        if left <= 0:
            return None
        try:
            data = await asyncio.wait_for(reader.read(4096), left)
        except asyncio.TimeoutError:
            return None
        if not data:
            return time.time() - t0


async def session(reader, writer):
    event(ev="connect")
    stage, t_data_end, mid = "greeting", None, ""
    try:
        await reply(writer, "220 faults.localhost ESMTP fault-test server")
        rcpts = []
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line.decode("latin-1").rstrip("\r\n")
            verb = cmd[:4].upper()
            m = mode()
            if verb == "EHLO":
                stage = "ehlo"
                await reply(writer, "250-faults.localhost\r\n250-8BITMIME\r\n250 SIZE 10485760")
            elif verb == "HELO":
                stage = "ehlo"
                await reply(writer, "250 faults.localhost")
            elif verb == "MAIL":
                stage, rcpts = "mail", []
                await reply(writer, "250 2.1.0 OK")
            elif verb == "RCPT":
                stage = "rcpt"
                if m == "permfail":
                    event(ev="reply", code=550, stage="rcpt", rcpt=cmd[8:].strip())
                    await reply(writer, "550 5.1.1 No such user here (fault test)")
                else:
                    rcpts.append(cmd[8:].strip())
                    await reply(writer, "250 2.1.5 OK")
            elif verb == "DATA":
                if not rcpts:
                    event(ev="reply", code=503, stage="data")
                    await reply(writer, "503 5.5.1 No valid recipients")
                    continue
                stage = "data"
                await reply(writer, "354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    dl = await reader.readline()
                    if not dl:
                        raise ConnectionError("client left during DATA")
                    if dl in (b".\r\n", b".\n"):
                        break
                    if dl.startswith(b".."):
                        dl = dl[1:]
                    chunks.append(dl)
                data = b"".join(chunks)
                mid = message_id(data)
                stage, t_data_end = "data_end", time.time()
                m = mode()
                event(ev="data_end", mode=m, message_id=mid)
                if m == "tempfail":
                    event(ev="reply", code=451, message_id=mid)
                    await reply(writer, "451 4.3.0 Temporary failure, try again later (fault test)")
                elif m == "stall":
                    # never answer; wait (up to 10 minutes) for the client to leave
                    left = await client_leaves(reader, 600)
                    if left is not None:
                        event(ev="client_left", after_data_end=round(left, 3), message_id=mid)
                    break
                elif m.startswith("slow:"):
                    store(data)
                    event(ev="stored", message_id=mid)
                    left = await client_leaves(reader, float(m[5:]))
                    if left is not None:
                        event(ev="client_left", after_data_end=round(left, 3), message_id=mid)
                        break
                    event(ev="reply", code=250, message_id=mid)
                    await reply(writer, "250 2.0.0 Queued (slowly)")
                else:
                    store(data)
                    event(ev="stored", message_id=mid)
                    event(ev="reply", code=250, message_id=mid)
                    await reply(writer, "250 2.0.0 Queued")
                stage = "after_data"
            elif verb == "RSET":
                rcpts = []
                await reply(writer, "250 2.0.0 OK")
            elif verb == "NOOP":
                await reply(writer, "250 2.0.0 OK")
            elif verb == "QUIT":
                stage = "quit"
                await reply(writer, "221 2.0.0 Bye")
                break
            else:
                await reply(writer, "502 5.5.2 Command not implemented")
    except (ConnectionError, OSError):
        pass
    finally:
        ev = {"ev": "disconnect", "stage": stage}
        if t_data_end is not None:
            ev["after_data_end"] = round(time.time() - t_data_end, 3)
            ev["message_id"] = mid
        event(**ev)
        try:
            writer.close()
        except Exception:
            pass


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", ARGS.port, reuse_address=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--events")
    ARGS = ap.parse_args()
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(ARGS.maildir, sub), exist_ok=True)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
