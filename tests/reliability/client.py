#!/usr/bin/env python3
"""client.py - the harness's load client: concurrent submitters that never give up on a key.

Each submission has its own Idempotency-Key (also used as the job's name, so that the harness can
match every antennad job to the key that produced it even if no field carries the key). A client
thread sends a key's POST /v1/jobs until it is acknowledged with 202, always with the SAME key: on
a lost answer (connection refused, reset, closed, timed out, TLS error) it reconnects and retries;
on 503 (also 409, 425, 429: busy, or the key still in progress) it waits Retry-After (capped) and
retries; on another 5xx it retries too (the harness counts it as a bad answer: antennad should say
503 + Retry-After when it cannot take work). Any other 4xx is final. 202 acknowledges (200/201 with a
job object too, for a replayed key).
With --drop-rate, that fraction of first attempts has its answer dropped unread (the connection is
closed after --drop-wait seconds), as a client timeout would: a lost answer without any crash.

Every event is appended to --log as one JSON line, flushed at once, so that the record survives
whatever happens to this process:
  {"ev": "sent",   "key": K, "attempt": n, "t": ...}
  {"ev": "ack",    "key": K, "id": ID, "name": NAME, "attempt": n, "t": ...}
  {"ev": "lost",   "key": K, "attempt": n, "err": "..."}
  {"ev": "status", "key": K, "attempt": n, "code": 503, "retry_after": "2" | null, "body": "..."}
  {"ev": "gaveup", "key": K, "why": "..."}
  {"ev": "done",   "acked": n, "keys": n, ...}        (last line, on a normal end)

Keys are issued at --rate per second in total, at least --count of them, and until --stop-file
exists when it is given. Stdlib only (no pip).
"""
import argparse
import http.client
import json
import os
import random
import socket
import ssl
import sys
import threading
import time

SCRIPT = """#!/bin/bash
# reliability harness job for key {key}
echo "key={key} tag=${{ANTENNA_JOB_TAG:-}} slurm=${{SLURM_JOB_ID:-}}" >> {runlog}
sleep {sleep}
"""


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **ev):
        ev.setdefault("t", round(time.time(), 3))
        line = json.dumps(ev, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


class Submitter:
    def __init__(self, args, log, token):
        self.a = args
        self.log = log
        self.token = token
        self.ctx = ssl.create_default_context(cafile=args.ca)
        host_port = args.url.split("://", 1)[1].rstrip("/")
        self.host, _, port = host_port.partition(":")
        self.port = int(port or 443)
        self.conn = None

    def connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                                    timeout=self.a.timeout)
        return self.conn

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def submit(self, key, deadline):
        """Sends `key` until it is acknowledged; returns True when it was."""
        body = json.dumps({
            "script": SCRIPT.format(key=key, runlog=self.a.runlog, sleep=self.a.sleep),
            "name": key, "gpus": self.a.gpus, "gpu_type": "h100", "cpus_per_task": 1,
            "time_minutes": self.a.time_minutes,
            **({"requeue": True} if self.a.requeue else {}),
        })
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json",
                   "Idempotency-Key": key}
        attempt = 0
        backoff = 0.1
        while True:
            if time.time() > deadline:
                self.log.write(ev="gaveup", key=key, why="deadline", attempts=attempt)
                return False
            attempt += 1
            self.log.write(ev="sent", key=key, attempt=attempt)
            try:
                c = self.connect()
                c.request("POST", "/v1/jobs", body=body, headers=headers)
                if attempt == 1 and self.a.drop_rate > 0 and random.random() < self.a.drop_rate:
                    # A lost answer without a crash: the request went out, the answer is never
                    # read (a client timeout, a proxy cut). Only the same key may follow.
                    time.sleep(self.a.drop_wait)
                    self.drop()
                    self.log.write(ev="lost", key=key, attempt=attempt, dropped=True,
                                   err="answer dropped on purpose after %.1f s" % self.a.drop_wait)
                    continue
                r = c.getresponse()
                data = r.read()
                code = r.status
                retry_after = r.getheader("Retry-After")
                if r.getheader("Connection", "").lower() == "close":
                    self.drop()
            except (OSError, http.client.HTTPException, ssl.SSLError, socket.timeout) as e:
                self.drop()
                self.log.write(ev="lost", key=key, attempt=attempt,
                               err="%s: %s" % (type(e).__name__, e))
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            try:
                job = json.loads(data)
            except ValueError:
                job = None
            if code in (200, 201, 202) and isinstance(job, dict) and job.get("id") is not None:
                # 202 is the answer; a replay of a known key may come as 200/201 with the job.
                self.log.write(ev="ack", key=key, id=job.get("id"), name=job.get("name"),
                               attempt=attempt, code=code)
                return True
            text = data[:300].decode("utf-8", "replace")
            self.log.write(ev="status", key=key, attempt=attempt, code=code,
                           retry_after=retry_after, body=text)
            if code in (409, 425, 429, 503):
                # Busy, or this key is still being processed: wait and send it again.
                wait = 1.0
                try:
                    wait = float(retry_after)
                except (TypeError, ValueError):
                    pass
                time.sleep(max(0.05, min(wait, self.a.max_retry_after)))
                continue
            if code >= 500:
                time.sleep(0.5)
                continue
            self.log.write(ev="gaveup", key=key, why="status %d" % code, attempts=attempt)
            return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--tokens", required=True, help="file: one bearer token a line (one per thread, round robin)")
    p.add_argument("--prefix", required=True, help="key prefix, unique to the run and scenario")
    p.add_argument("--count", type=int, required=True, help="at least this many keys")
    p.add_argument("--rate", type=float, default=20.0, help="new keys per second, in total")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--stop-file", default="", help="keep issuing keys until this file exists")
    p.add_argument("--log", required=True)
    p.add_argument("--runlog", required=True, help="file every job appends its line to")
    p.add_argument("--sleep", type=float, default=1.0, help="seconds each job sleeps")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--time-minutes", type=int, default=2)
    p.add_argument("--requeue", action="store_true", help="sbatch --requeue: Slurm may rerun them")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds for one answer")
    p.add_argument("--max-retry-after", type=float, default=5.0)
    p.add_argument("--drop-rate", type=float, default=0.0,
                   help="fraction of first attempts whose answer is dropped unread")
    p.add_argument("--drop-wait", type=float, default=0.5,
                   help="seconds to wait before dropping an answer (the request is processed)")
    p.add_argument("--deadline", type=float, default=900.0, help="seconds before giving up on keys")
    a = p.parse_args()

    tokens = [t.strip() for t in open(a.tokens) if t.strip()]
    log = Log(a.log)
    start = time.time()
    deadline = start + a.deadline
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "gaveup": 0}

    def next_key():
        with lock:
            i = state["next"]
            if i >= a.count and (not a.stop_file or os.path.exists(a.stop_file)):
                return None
            state["next"] = i + 1
        slot = start + i / a.rate
        now = time.time()
        if slot > now:
            time.sleep(slot - now)
        return "%s-%06d" % (a.prefix, i)

    def worker(n):
        s = Submitter(a, log, tokens[n % len(tokens)])
        while True:
            key = next_key()
            if key is None:
                break
            ok = s.submit(key, deadline)
            with lock:
                state["acked" if ok else "gaveup"] += 1
        s.drop()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.write(ev="done", keys=state["next"], acked=state["acked"], gaveup=state["gaveup"],
              seconds=round(time.time() - start, 1))
    return 0 if state["gaveup"] == 0 else 1


if __name__ == "__main__":
    random.seed()
    sys.exit(main())
