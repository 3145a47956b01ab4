#!/usr/bin/env python3
"""An echo bot on chimed, Python standard library only.

It runs `chimed --stdio` as a subprocess (JSON-RPC 2.0, one JSON object per line), logs in, and
answers every text message it receives with "echo: <text>" to the sender (or the group).

    python3 echo_bot.py --chimed ./target/debug/chimed --server ws://127.0.0.1:7700/ws \
        --user bot --user-sig "$(chime-server usersig --sdk-app-id 1400000000 --key KEY --user-id bot)" \
        --data-dir /tmp/echo-bot [--sdk-app-id 1400000000] [--max-replies N]

Prints one line per reply ("replied <msg_id>") and exits 0 at --max-replies, on SIGTERM or when
chimed exits. The same requests work over `chimed --listen` with a WebSocket client.
"""

import argparse
import itertools
import json
import signal
import subprocess
import sys
import threading


class Chimed:
    """A `chimed --stdio` child: requests get answers by id, notifications go to a callback."""

    def __init__(self, path, on_event):
        self.proc = subprocess.Popen(
            [path, "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.waiting = {}  # id -> [Event, answer]
        self.on_event = on_event
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "id" in msg:
                with self.lock:
                    slot = self.waiting.pop(msg["id"], None)
                if slot is not None:
                    slot[1] = msg
                    slot[0].set()
            else:
                self.on_event(msg.get("engine"), msg["method"], msg.get("params", {}))
        # chimed exited: wake everyone still waiting.
        with self.lock:
            for slot in self.waiting.values():
                slot[0].set()
            self.waiting.clear()

    def call(self, method, params=None, timeout=30):
        """Runs a method; returns its result or raises RuntimeError(code, message)."""
        req_id = next(self.ids)
        slot = [threading.Event(), None]
        with self.lock:
            self.waiting[req_id] = slot
        line = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}})
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        if not slot[0].wait(timeout) or slot[1] is None:
            raise RuntimeError(-1, f"{method}: no answer")
        if "error" in slot[1]:
            err = slot[1]["error"]
            raise RuntimeError(err["code"], err["message"])
        return slot[1]["result"]

    def close(self):
        """EOF on chimed's stdin: it logs out, un-initialises and exits."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def text_of(message):
    for elem in message.get("elem_list", []):
        if "text" in elem:
            return elem["text"]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chimed", default="chimed")
    ap.add_argument("--server", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--user-sig", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--sdk-app-id", type=int, default=1400000000)
    ap.add_argument("--max-replies", type=int, default=0, help="exit after N replies (0: never)")
    args = ap.parse_args()

    inbox = []
    arrived = threading.Condition()

    def on_event(engine, name, params):
        if name == "on_recv_new_message":
            with arrived:
                inbox.append(params["message"])
                arrived.notify()

    chimed = Chimed(args.chimed, on_event)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    chimed.call("init_sdk", {
        "sdk_app_id": args.sdk_app_id,
        "server_url": args.server,
        "data_dir": args.data_dir,
        "log_level": "warn",
    })
    chimed.call("login", {"user_id": args.user, "user_sig": args.user_sig})
    print("ready", flush=True)

    replies = 0
    while not stop.is_set() and chimed.proc.poll() is None:
        with arrived:
            if not inbox:
                arrived.wait(0.2)
            batch, inbox[:] = inbox[:], []
        for message in batch:
            text = text_of(message)
            if text is None or message.get("sender") == args.user:
                continue
            params = {"text": "echo: " + text}
            if message.get("group_id"):
                params["group_id"] = message["group_id"]
                method = "send_group_text_message"
            else:
                params["user_id"] = message["sender"]
                method = "send_c2c_text_message"
            try:
                sent = chimed.call(method, params)
                print("replied", sent["msg_id"], flush=True)
                replies += 1
            except RuntimeError as e:
                print("error", *e.args, file=sys.stderr, flush=True)
        if args.max_replies and replies >= args.max_replies:
            break
    chimed.call("logout")
    return chimed.close()


if __name__ == "__main__":
    sys.exit(main())
