#!/usr/bin/env python3
"""harness.py - the fault scenarios of `make reliability`, their checks, the table, docs/reliability.md.

Run by tests/reliability/run.sh, which owns the Slurm cluster, the private folder and the cleanup;
this file starts, kills and restarts antennad (and slurmctld), drives the load clients (client.py)
and, after each scenario, with the cluster quiet, counts what went wrong. Stdlib only.

Every scenario gets its own partner, users and key prefix, so that each row of the table only
counts the jobs, the quota and the audit entries of its own scenario.
"""
import argparse
import calendar
import datetime
import errno
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time

POINTS = ["commit.before", "commit.after", "dispatch.begun", "dispatch.sent", "charge.before"]
POINT_WHAT = {
    "commit.before": "inside a group commit: every change of the batch written, COMMIT not yet run. "
                     "Proves a batch is all-or-nothing and that nothing of it was acknowledged.",
    "commit.after": "a batch is on disk, its callers not answered yet. Proves that work on disk "
                    "but never acknowledged is neither lost nor duplicated when the client retries "
                    "with the same Idempotency-Key.",
    "dispatch.begun": "a job's dispatch (hold, state dispatching) is committed, Slurm not yet "
                      "asked. Proves recovery requeues it (not found by its tag) and the hold is "
                      "released or reused, never leaked.",
    "dispatch.sent": "Slurm accepted the job, its Slurm id is not recorded. Proves recovery finds "
                     "it by its tag and never submits it a second time.",
    "charge.before": "a finished job's charge is written in the batch, not committed. Proves the "
                     "charge and the state change land together, exactly once, after restart.",
}
TERMINAL = {"completed", "failed", "cancelled", "timeout", "node_fail", "preempted", "boot_fail",
            "deadline", "out_of_memory", "lost"}
COLUMNS = ["scenario", "kills/restarts", "submissions acked", "missing", "duplicated",
           "in Slurm twice", "ran twice", "charge errors", "used≠sum", "held at rest",
           "audit gaps", "verify", "bad answers", "not completed"]
# Columns that must read 0 (verify must read "ok").
ZERO_COLS = ["missing", "duplicated", "in Slurm twice", "ran twice", "charge errors", "used≠sum",
             "held at rest", "audit gaps", "bad answers", "not completed"]
TAG_RE = re.compile(r"antenna:([^:\s]+):(\d+)$")


def log(msg):
    print("   " + msg, flush=True)


def rfc3339(s):
    if not s:
        return None
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


class Api:
    """One keep-alive HTTPS connection to antennad; JSON in and out. Retries lost connections
    (antennad may be restarting) for up to `patience` seconds."""

    def __init__(self, port, ca, token, patience=60.0):
        self.port, self.token, self.patience = port, token, patience
        self.ctx = ssl.create_default_context(cafile=ca)
        self.conn = None

    def call(self, method, path, body=None, token=None, headers=None):
        deadline = time.time() + self.patience
        data = json.dumps(body) if body is not None else None
        h = {"Authorization": "Bearer " + (token or self.token)}
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        while True:
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                                            timeout=30)
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    obj = json.loads(raw) if raw else None
                except ValueError:
                    obj = raw.decode("utf-8", "replace")
                return r.status, obj
            except (OSError, http.client.HTTPException, ssl.SSLError, socket.timeout):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def ok(self, method, path, body=None, want=(200, 201, 202), token=None):
        st, obj = self.call(method, path, body, token)
        if st not in want:
            raise RuntimeError("%s %s -> %s %s" % (method, path, st, str(obj)[:300]))
        return obj


class Antennad:
    """The antennad under test: start (optionally with ANTENNA_FAULT), signal, wait, restart.
    Knows which exits it caused; any other exit is recorded as unexpected."""

    def __init__(self, h):
        self.h = h
        self.proc = None
        self.fault = None
        self.expected_exit = False
        self.unexpected = []  # (scenario, rc, tail of log)
        self.starts = 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, fault=None, timeout=60.0):
        assert not self.alive()
        env = dict(os.environ)
        env.pop("ANTENNA_FAULT", None)
        if fault:
            env["ANTENNA_FAULT"] = fault
        logf = open(self.h.antennad_log, "ab")
        logf.write(("--- harness: start%s at %s\n" % (" ANTENNA_FAULT=" + fault if fault else "",
                                                      time.strftime("%H:%M:%S"))).encode())
        logf.flush()
        self.proc = subprocess.Popen([self.h.antennad_bin, "serve", "--config", self.h.config],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                                     start_new_session=True)
        logf.close()
        self.fault = fault
        self.expected_exit = bool(fault)  # a fault run is expected to kill itself
        self.starts += 1
        with open(os.path.join(self.h.work, "antennad.pid"), "w") as f:
            f.write("%d\n" % self.proc.pid)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if fault:  # may legitimately die at its crash point during start-up
                    return True
                raise RuntimeError("antennad exited (rc %s) during start; see %s" %
                                   (self.proc.returncode, self.h.antennad_log))
            if self.healthy():
                return True
            time.sleep(0.1)
        raise RuntimeError("antennad did not answer /healthz within %.0f s" % timeout)

    def healthy(self):
        try:
            c = http.client.HTTPSConnection("127.0.0.1", self.h.port, context=self.h.ctx, timeout=2)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status in (200, 503)
        except (OSError, http.client.HTTPException, ssl.SSLError, socket.timeout):
            return False

    def signal(self, sig):
        if self.alive():
            self.expected_exit = True
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        """Waits for antennad to exit; returns its return code, or None if it still runs."""
        if self.proc is None:
            return 0
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        self.signal(signal.SIGKILL)
        self.wait(30)

    def term(self, timeout=15.0):
        """SIGTERM; returns the seconds it took to stop, or None if it had to be SIGKILLed."""
        t0 = time.time()
        self.signal(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.kill()
            return None
        return time.time() - t0

    def ensure(self, scenario):
        """Restarts antennad if it exited without the harness asking (like Restart=always)."""
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit:
            rc = self.proc.returncode
            tail = self.h.log_tail(6)
            self.unexpected.append((scenario.num, rc, tail))
            scenario.fail("antennad exited by itself (rc %s); log tail: %s" % (rc, tail))
        if not self.alive():
            self.start()


class Ctld:
    """The harness cluster's slurmctld: stop/continue, kill, restart with the same state."""

    def __init__(self, h):
        self.h = h
        self.pidfile = os.path.join(h.work, "slurm", "run", "slurmctld.pid")

    def pid(self):
        try:
            p = int(open(self.pidfile).read().strip())
            if open("/proc/%d/comm" % p).read().strip() == "slurmctld":
                return p
        except (OSError, ValueError):
            pass
        return None

    def sig(self, s):
        p = self.pid()
        if p:
            os.kill(p, s)
        return p

    def stop_for_good(self, sig=signal.SIGTERM, timeout=30):
        p = self.sig(sig)
        deadline = time.time() + timeout
        while p and time.time() < deadline and os.path.exists("/proc/%d" % p):
            try:
                st = open("/proc/%d/stat" % p).read().split(")")[-1].split()[0]
                if st == "Z":
                    break
            except OSError:
                break
            time.sleep(0.2)
        if p and os.path.exists("/proc/%d" % p) and time.time() >= deadline:
            os.kill(p, signal.SIGKILL)
            time.sleep(1)

    def start(self, timeout=60):
        # No -c: slurmctld recovers its saved state (jobs, node state) from StateSaveLocation.
        subprocess.run(["slurmctld", "-f", self.h.slurm_conf], env=self.h.slurm_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = subprocess.run(["scontrol", "ping"], env=self.h.slurm_env, capture_output=True,
                               text=True)
            if "UP" in r.stdout:
                return
            time.sleep(0.5)
        raise RuntimeError("slurmctld did not come back within %d s" % timeout)


class Scenario:
    def __init__(self, h, num, name):
        self.h, self.num, self.name = h, num, name
        self.partner = "rel%d" % num
        self.prefix = "%s-s%d" % (h.run_id, num)
        self.kills = ""  # the "kills/restarts" cell
        self.notes = []
        self.failures = []
        self.row = None
        self.seconds = 0.0
        self.clients = []

    def note(self, msg):
        self.notes.append(msg)
        log("note: " + msg)

    def fail(self, msg):
        self.failures.append(msg)
        log("FAIL: " + msg)


class Harness:
    def __init__(self, a):
        self.a = a
        self.root, self.work, self.config = a.root, a.work, a.config
        self.port, self.slurm_conf, self.doc = a.port, a.slurm_conf, a.doc
        self.antennad_bin = os.path.join(a.build, "antennad")
        self.antennad_log = os.path.join(self.work, "antennad.log")
        self.ca = os.path.join(self.work, "tls", "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.cfg = json.load(open(self.config))
        self.db = self.cfg["database"]
        self.db_dir = os.path.dirname(self.db)
        self.runlog = os.path.join(self.work, "runlog", "ran.log")
        open(self.runlog, "a").close()
        os.chmod(self.runlog, 0o666)
        self.slurm_env = dict(os.environ, SLURM_CONF=self.slurm_conf)
        self.quick = os.environ.get("RELIABILITY_QUICK", "0") not in ("", "0")
        self.seed = int(os.environ.get("RELIABILITY_SEED") or int(time.time()) % 100000)
        self.rng = random.Random(self.seed)
        self.run_id = "r%05d" % (self.seed % 100000)
        only = os.environ.get("RELIABILITY_ONLY", "").strip()
        self.only = {int(x) for x in only.split(",") if x.strip()} if only else None
        self.admin = open(os.path.join(self.work, "admin.token")).read().strip()
        self.api = Api(self.port, self.ca, self.admin)
        self.d = Antennad(self)
        self.ctld = Ctld(self)
        self.msg_timeout = self.slurm_config_value("MessageTimeout", 10)
        self.weight = float(self.cfg.get("gpu_weights", {}).get("h100", 1.0))
        self.audit_seq = 0
        self.last_job_id = 0
        self.scenarios = []
        self.selftest = None
        self.skipped = []  # (scenario number, why): printed with the table, never counted as passed
        self.selftest_sc = None
        self.current = None
        self.clients = []
        self.t0 = time.time()

    # --- plumbing -------------------------------------------------------------------------------

    def log_tail(self, n):
        try:
            lines = open(self.antennad_log, errors="replace").read().splitlines()[-n:]
        except OSError:
            return ""
        return " | ".join(l.strip()[:160] for l in lines)

    def log_evidence(self, jid, limit=2):
        """The first WARN/ERROR lines of antennad's log about job `jid`."""
        out = []
        pat = re.compile(r"\bjob %d\b[: (]" % jid)
        try:
            for line in open(self.antennad_log, errors="replace"):
                if ("WARN" in line or "ERROR" in line) and pat.search(line):
                    out.append(line.strip()[:220])
                    if len(out) >= limit:
                        break
        except OSError:
            pass
        return out

    def slurm_config_value(self, key, default):
        r = subprocess.run(["scontrol", "show", "config"], env=self.slurm_env, capture_output=True,
                           text=True)
        for line in r.stdout.splitlines():
            parts = line.split("=", 1)
            if len(parts) == 2 and parts[0].strip() == key:
                try:
                    return int(parts[1].split()[0])
                except (ValueError, IndexError):
                    pass
        return default

    def slurm_jobs(self):
        """Every job slurmctld knows: [{id, name, state, tags: [tag...]}]."""
        r = subprocess.run(["scontrol", "-o", "show", "job"], env=self.slurm_env, capture_output=True,
                           text=True, timeout=120)
        jobs = []
        for line in r.stdout.splitlines():
            m = re.search(r"\bJobId=(\d+)", line)
            if not m:
                continue
            j = {"id": int(m.group(1)), "tags": []}
            m = re.search(r"\bJobName=(\S*)", line)
            j["name"] = m.group(1) if m else ""
            m = re.search(r"\bJobState=(\S*)", line)
            j["state"] = m.group(1) if m else ""
            for field in ("Comment", "AdminComment"):
                m = re.search(r"(?<![A-Za-z])%s=(\S*)" % field, line)
                if m and TAG_RE.match(m.group(1)):
                    j["tags"].append(m.group(1))
            jobs.append(j)
        return jobs

    def slurm_busy(self):
        r = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=self.slurm_env, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            return None  # controller not answering
        return [l for l in r.stdout.splitlines() if l.strip()]

    def max_job_id(self):
        jobs = self.api.ok("GET", "/v1/jobs?limit=1")["jobs"]
        return jobs[0]["id"] if jobs else 0

    def max_audit_seq(self):
        return int(self.api.ok("GET", "/v1/audit/verify").get("entries") or 0)

    def fetch_jobs(self, ids):
        """GET /v1/jobs/{id} as admin for every id, on 4 connections. {id: job} (404s left out)."""
        ids = list(ids)
        out, lock = {}, threading.Lock()

        def work(part):
            api = Api(self.port, self.ca, self.admin)
            for i in part:
                st, obj = api.call("GET", "/v1/jobs/%d" % i)
                if st == 200:
                    with lock:
                        out[i] = obj
                elif st != 404:
                    raise RuntimeError("GET /v1/jobs/%d -> %s %s" % (i, st, obj))
        parts = [ids[k::4] for k in range(4)]
        ts = [threading.Thread(target=work, args=(p,)) for p in parts if p]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    def setup_partner(self, sc, nusers):
        """A partner with a large budget and no caps, `nusers` users, their tokens in a file."""
        self.api.ok("POST", "/v1/partners", {"name": sc.partner, "description": sc.name})
        self.api.ok("PATCH", "/v1/quotas/%s/current" % sc.partner, {"gpu_hours": 1000000})
        tokens = []
        # one Unix account serves the users of one partner only: each scenario's partner has its own
        account = "antenna-rel%d" % sc.num
        subprocess.run([os.path.join(self.root, "deploy/ensure-unix-user.sh"), account],
                       check=True, stdout=subprocess.DEVNULL)
        for k in range(nusers):
            u = "%su%d" % (sc.partner, k)
            self.api.ok("POST", "/v1/users", {"name": u, "partner": sc.partner,
                                               "unix_user": account, "category": "researcher"})
            tokens.append(self.api.ok("POST", "/v1/tokens", {"user": u, "label": "reliability"})["token"])
        sc.tokens_file = os.path.join(self.work, "tokens-%d" % sc.num)
        with open(sc.tokens_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        os.chmod(sc.tokens_file, 0o600)

    def start_client(self, sc, count, rate, threads=6, sleep=1.0, deadline=None, drop_rate=0.0,
                     stop_file=True, requeue=False):
        """Starts one load client for the scenario (a scenario may run several: each has its own
        key prefix and log; the checks merge them). Returns its index."""
        k = len(sc.clients)
        name = "%d.%d" % (sc.num, k)
        client_log = os.path.join(self.work, "client-%s.jsonl" % name)
        stop = os.path.join(self.work, "stop-%d" % sc.num) if stop_file else ""
        if deadline is None:
            deadline = 600 if self.quick else 1800
        cmd = [sys.executable, os.path.join(self.root, "tests/reliability/client.py"),
               "--url", "https://127.0.0.1:%d" % self.port, "--ca", self.ca,
               "--tokens", sc.tokens_file, "--prefix", "%s%s" % (sc.prefix, "" if k == 0 else "b%d" % k),
               "--count", str(count), "--rate", str(rate), "--threads", str(threads),
               "--stop-file", stop, "--log", client_log, "--runlog", self.runlog,
               "--sleep", str(sleep), "--deadline", str(deadline), "--drop-rate", str(drop_rate)]
        if requeue:
            cmd.append("--requeue")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.work, "client-%s.err" % name), "w"))
        pidfile = os.path.join(self.work, "pids", "client-%s.pid" % name)
        with open(pidfile, "w") as f:
            f.write("%d\n" % p.pid)
        sc.clients.append({"proc": p, "log": client_log, "pidfile": pidfile})
        self.clients.append(p)
        return k

    def finish_clients(self, sc, timeout):
        """Lets the clients end (stop file), restarting antennad if it died; returns their events."""
        open(os.path.join(self.work, "stop-%d" % sc.num), "w").close()
        deadline = time.time() + timeout
        while any(c["proc"].poll() is None for c in sc.clients) and time.time() < deadline:
            self.d.ensure(sc)
            time.sleep(0.5)
        for c in sc.clients:
            if c["proc"].poll() is None:
                sc.fail("a load client had not finished %d s after the load stopped "
                        "(keys never acknowledged); stopped it" % timeout)
                c["proc"].kill()
                c["proc"].wait()
            try:
                os.unlink(c["pidfile"])
            except OSError:
                pass
        return self.client_events(sc)

    def stop_clients(self, sc):
        for c in sc.clients:
            if c["proc"] is not None and c["proc"].poll() is None:
                c["proc"].kill()
                c["proc"].wait()

    def client_events(self, sc, k=None):
        out = []
        for i, c in enumerate(sc.clients):
            if k is not None and i != k:
                continue
            try:
                for line in open(c["log"]):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
            except OSError:
                pass
        return out

    def client_acked(self, sc, k=None):
        return sum(1 for e in self.client_events(sc, k) if e.get("ev") == "ack")

    def sleep_load(self, sc, seconds):
        """Sleeps while keeping antennad up."""
        end = time.time() + seconds
        while time.time() < end:
            self.d.ensure(sc)
            time.sleep(min(0.25, max(0.0, end - time.time())))

    # --- the checks -----------------------------------------------------------------------------

    def quiesce(self, sc, ids_from, timeout):
        """Waits until every job of the scenario's partner is terminal in antennad and Slurm has
        nothing pending or running. Returns {id: job} for the partner's jobs."""
        deadline = time.time() + timeout
        self.d.ensure(sc)
        top = self.max_job_id()
        jobs = {i: j for i, j in self.fetch_jobs(range(ids_from + 1, top + 1)).items()
                if j.get("partner") == sc.partner}
        while True:
            self.d.ensure(sc)
            busy = self.slurm_busy()
            active = [i for i, j in jobs.items() if j["state"] not in TERMINAL]
            if active:
                jobs.update(self.fetch_jobs(active))
                active = [i for i, j in jobs.items() if j["state"] not in TERMINAL]
            if not active and busy == []:
                # Anything new meanwhile (a late retry)? Then go round once more.
                top2 = self.max_job_id()
                if top2 == top:
                    return jobs
                jobs.update({i: j for i, j in self.fetch_jobs(range(top + 1, top2 + 1)).items()
                             if j.get("partner") == sc.partner})
                top = top2
                continue
            if time.time() > deadline:
                states = {}
                for i in active:
                    states[jobs[i]["state"]] = states.get(jobs[i]["state"], 0) + 1
                sc.fail("not quiet after %d s: %d antennad job(s) not terminal %s, %s Slurm job(s) "
                        "pending/running" % (timeout, len(active), states,
                                             "?" if busy is None else len(busy)))
                return jobs
            time.sleep(1.0)

    def ledger_rows(self, ids):
        """{job id: {kind: [count, gpu_seconds]}} straight from the ledger (read-only), or None
        when the database cannot be read that way (a changed schema): the API checks remain."""
        try:
            con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
            rows = con.execute("SELECT job_id, kind, count(*), coalesce(sum(gpu_seconds), 0) "
                               "FROM ledger GROUP BY job_id, kind").fetchall()
            con.close()
        except sqlite3.Error as e:
            return None, str(e)
        want = set(ids)
        out = {}
        for jid, kind, n, g in rows:
            if jid in want:
                out.setdefault(jid, {})[kind] = [n, g]
        return out, ""

    def check(self, sc, events, ids_from, audit_from, quiet_timeout):
        jobs = self.quiesce(sc, ids_from, quiet_timeout)
        row = {"scenario": "%d. %s" % (sc.num, sc.name), "kills/restarts": sc.kills}

        # The client's record: keys sent, keys acknowledged (and with which job id).
        acked, sent, statuses, gaveup = {}, set(), {}, []
        bad = 0
        for e in events:
            ev = e.get("ev")
            if ev == "sent":
                sent.add(e["key"])
            elif ev == "ack":
                acked.setdefault(e["key"], e.get("id"))
            elif ev == "status":
                code = e.get("code")
                k = "%s%s" % (code, "" if code != 503 or e.get("retry_after") else " (no Retry-After)")
                statuses[k] = statuses.get(k, 0) + 1
                # Fine: 503 with Retry-After, and "busy / key in progress" (409, 425, 429).
                if not ((code == 503 and e.get("retry_after")) or code in (409, 425, 429)):
                    bad += 1
            elif ev == "gaveup":
                gaveup.append(e["key"])
        row["submissions acked"] = len(acked)
        if statuses:
            samples = {}
            for e in events:
                if e.get("ev") == "status":
                    samples.setdefault(e.get("code"), e.get("body", "")[:160])
            sc.note("answers other than 202: %s; e.g. %s" % (", ".join(
                "%s x%d" % (k, v) for k, v in sorted(statuses.items())), "; ".join(
                "%s %s" % (c, b) for c, b in samples.items())))
        if gaveup:
            sc.fail("%d key(s) never acknowledged (client gave up): %s" % (len(gaveup), gaveup[:5]))
        row["bad answers"] = bad
        lost = sum(1 for e in events if e.get("ev") == "lost")
        dropped = sum(1 for e in events if e.get("ev") == "lost" and e.get("dropped"))
        retried = len({e["key"] for e in events if e.get("ev") == "sent" and e.get("attempt", 1) > 1})
        kinds = {}
        for e in events:
            if e.get("ev") == "lost" and not e.get("dropped"):
                k = e.get("err", "?").split(":")[0]
                kinds[k] = kinds.get(k, 0) + 1
        sc.note("%d keys sent, %d acknowledged; %d lost answers (%d dropped by the client on "
                "purpose%s), %d keys retried" % (
                    len(sent), len(acked), lost, dropped,
                    "".join(", %d %s" % (v, k) for k, v in sorted(kinds.items())), retried))

        # Acknowledged jobs missing; keys that produced more than one job.
        by_name = {}
        for i, j in jobs.items():
            by_name.setdefault(j.get("name"), []).append(i)
        missing = [k for k, i in acked.items() if i not in jobs or jobs[i].get("name") != k]
        row["missing"] = len(missing)
        if missing:
            sc.note("acknowledged but missing: %s" % ", ".join(
                "%s->job %s" % (k, acked[k]) for k in missing[:5]))
        dups = {k: sorted(by_name[k]) for k in acked if len(by_name.get(k, [])) > 1}
        row["duplicated"] = len(dups)
        if dups:
            extra = sum(len(v) - 1 for v in dups.values())
            ex = list(dups.items())[:3]
            dropped_keys = {e["key"] for e in events if e.get("ev") == "lost" and e.get("dropped")}
            nd = sum(1 for k in dups if k in dropped_keys)
            sc.note("%d key(s) produced %d extra antennad job(s) (%d after an answer the client "
                    "dropped, %d after a crash or restart), e.g. %s" % (
                        len(dups), extra, nd, len(dups) - nd,
                        "; ".join("%s -> jobs %s" % (k, v) for k, v in ex)))
        orphans = [i for i, j in jobs.items() if j.get("name") not in acked]
        if orphans:
            sc.note("%d antennad job(s) whose key was never acknowledged: %s" %
                    (len(orphans), sorted(orphans)[:5]))

        # Slurm: antennad jobs present more than once (by the tag antenna:<instance>:<job id>).
        sj = self.slurm_jobs()
        tagged = {}
        for s in sj:
            for t in set(s["tags"]):
                tagged.setdefault(int(TAG_RE.match(t).group(2)), set()).add(s["id"])
        twice = {i: sorted(tagged[i]) for i in jobs if len(tagged.get(i, ())) > 1}
        row["in Slurm twice"] = len(twice)
        if twice:
            ex = list(twice.items())[:3]
            sc.note("in Slurm more than once: %s" % "; ".join(
                "job %d (key %s) -> Slurm %s (antennad recorded %s)" % (
                    i, jobs[i].get("name"), v, jobs[i].get("slurm_job_id")) for i, v in ex))
            for line in self.log_evidence(ex[0][0]):
                sc.note("antennad.log: %s" % line)
        slurm_to_job = {}
        for i, ss in tagged.items():
            for s in ss:
                slurm_to_job[s] = i
        for i, j in jobs.items():
            if j.get("slurm_job_id"):
                slurm_to_job.setdefault(int(j["slurm_job_id"]), i)

        # Jobs that ran twice: every job appends "key=K tag=T slurm=S" to the shared run log.
        runs = {}
        unattributed = 0
        for line in open(self.runlog, errors="replace"):
            # (the tag antennad gives a job ends in " rid=<request id>" since request ids)
            m = re.match(r"key=(\S+) tag=(\S*)(?: rid=\S*)? slurm=(\S*)", line)
            if not m or not (m.group(1) in sent or m.group(1) in by_name):
                continue
            jid = None
            t = TAG_RE.match(m.group(2))
            if t:
                jid = int(t.group(2))
            elif m.group(3).isdigit():
                jid = slurm_to_job.get(int(m.group(3)))
            if jid is None:
                unattributed += 1
                continue
            runs.setdefault(jid, []).append(m.group(3))
        # (a job Slurm requeued runs once more per restart antennad recorded: more is a run nobody
        # knows of, never charged)
        ran_twice = {i: v for i, v in runs.items()
                     if len(v) > 1 + int(jobs.get(i, {}).get("restarts") or 0)}
        row["ran twice"] = len(ran_twice)
        if ran_twice:
            ex = list(ran_twice.items())[:3]
            sc.note("ran more than once: %s" % "; ".join(
                "job %d (key %s) in Slurm jobs %s" % (i, jobs.get(i, {}).get("name"), v)
                for i, v in ex))
        if unattributed:
            sc.note("%d run-log line(s) could not be matched to an antennad job" % unattributed)

        # Charges: every finished job charged exactly once per run, for what ran. A run that Slurm
        # requeued (a --requeue job) is charged when it ends: the job object lists those runs.
        charge_err, rows_of = {}, {}
        for i, j in jobs.items():
            limit = int(j.get("time_minutes") or 0) * 60
            gpus = int(j.get("gpus") or 0)
            want, rows = 0, 0
            for r in j.get("runs") or []:
                st, en = rfc3339(r.get("started_at")), rfc3339(r.get("ended_at"))
                el = int(r.get("elapsed_seconds") or 0)
                if st is None or en is None or el != max(0, en - st):
                    charge_err[i] = "run %s: elapsed %s s, from %s to %s" % (
                        r.get("run"), el, r.get("started_at"), r.get("ended_at"))
                w = round(gpus * min(el, limit * int(r.get("runs") or 1)) * self.weight)
                if abs(round(float(r.get("charge_gpu_hours") or 0) * 3600) - w) > 1:
                    charge_err.setdefault(i, "run %s charged %d GPU-s, ran %d" % (
                        r.get("run"), round(float(r.get("charge_gpu_hours") or 0) * 3600), w))
                want += w
                rows += 1 if el > 0 else 0  # (its CPU-seconds make a row even at 0 GPUs)
            if j["state"] not in TERMINAL:
                rows_of[i] = rows
                continue
            st, en = rfc3339(j.get("started_at")), rfc3339(j.get("ended_at"))
            elapsed = 0
            if j["state"] != "lost" and st and en and en > st:
                elapsed = min(en - st, limit)
            elif j["state"] == "lost":
                # neither slurmctld nor slurmdbd knew its end: charged its full hold
                elapsed = limit
            want += round(gpus * elapsed * self.weight)
            rows_of[i] = rows + (1 if elapsed > 0 else 0)
            got = j.get("charge_gpu_hours")
            if got is None:
                if want > 0:
                    charge_err[i] = "no charge (want %d GPU-s)" % want
            elif abs(round(got * 3600) - want) > 1 + len(j.get("runs") or []):
                charge_err[i] = "charged %d GPU-s, ran %d" % (round(got * 3600), want)
        ledger, why = self.ledger_rows(jobs.keys())
        if ledger is None:
            sc.note("ledger not readable directly (%s): charge counts from the API only" % why)
        else:
            for i, j in jobs.items():
                n = ledger.get(i, {}).get("charge", [0, 0])[0]
                # One charge row per run that ran a second or more (antennad writes none for a
                # zero charge), never two; none for a job still running but for its requeued runs.
                if n != rows_of.get(i, 0):
                    charge_err.setdefault(i, "%d charge rows in the ledger for %d charged run(s)%s"
                                          % (n, rows_of.get(i, 0), "" if j["state"] in TERMINAL
                                             else " while %s" % j["state"]))
        row["charge errors"] = len(charge_err)
        if charge_err:
            sc.note("charge errors: %s" % "; ".join(
                "job %d: %s" % (i, w) for i, w in list(charge_err.items())[:4]))

        # The partner's quota: used = sum of the charges; nothing held at rest.
        q = self.api.ok("GET", "/v1/quotas?partner=%s" % sc.partner)["quotas"]
        q = q[0] if q else {}
        used = round(float(q.get("used_gpu_hours") or 0) * 3600)
        held = round(float(q.get("held_gpu_hours") or 0) * 3600)
        charged = round(sum(float(j.get("charge_gpu_hours") or 0) for j in jobs.values()) * 3600)
        usage = self.api.ok("GET", "/v1/usage?by=total&partner=%s" % sc.partner)
        usage_s = int((usage.get("total") or {}).get("gpu_seconds") or 0)
        row["used≠sum"] = max(abs(used - charged), abs(usage_s - charged))
        if row["used≠sum"]:
            sc.note("quota used %d GPU-s, usage total %d GPU-s, sum of job charges %d GPU-s" %
                    (used, usage_s, charged))
        # The ledger's holds and releases of the partner's jobs must cancel out at rest.
        ledger_held = 0
        if ledger is not None:
            ledger_held = sum(k.get("hold", [0, 0])[1] + k.get("release", [0, 0])[1]
                              for i, k in ledger.items()
                              if jobs.get(i, {}).get("state") in TERMINAL)
        row["held at rest"] = max(held, abs(ledger_held))
        if held or ledger_held:
            sc.note("still held with every job finished: quota %d GPU-s, ledger holds - releases "
                    "%d GPU-s" % (held, ledger_held))

        # Audit: one job.submitted per job, one job.finished per finished job.
        entries = self.api.ok("GET", "/v1/audit?action=job.&after=%d&limit=100000" % audit_from)["entries"]
        sub, fin, strays = {}, {}, 0
        for e in entries:
            if e.get("partner") != sc.partner or not isinstance(e.get("details"), dict):
                continue
            jid = e["details"].get("job")
            if e["action"] == "job.submitted":
                if jid in jobs:
                    sub[jid] = sub.get(jid, 0) + 1
                else:
                    strays += 1
            elif e["action"] == "job.finished":
                if jid in jobs:
                    fin[jid] = fin.get(jid, 0) + 1
                else:
                    strays += 1
        gaps = {}
        for i, j in jobs.items():
            if sub.get(i, 0) != 1:
                gaps[i] = "%d job.submitted" % sub.get(i, 0)
            want = 1 if j["state"] in TERMINAL else 0
            if fin.get(i, 0) != want:
                gaps[i] = gaps.get(i, "") + " %d job.finished (state %s)" % (fin.get(i, 0), j["state"])
        row["audit gaps"] = len(gaps) + strays
        if gaps or strays:
            sc.note("audit gaps: %s%s" % ("; ".join("job %d: %s" % (i, w.strip())
                                                    for i, w in list(gaps.items())[:4]),
                                          " (+%d entries naming no job of the partner)" % strays
                                          if strays else ""))

        # The chain itself, offline and through the API.
        r = subprocess.run([self.antennad_bin, "audit-verify", "--config", self.config],
                           capture_output=True, text=True, timeout=300)
        v = self.api.ok("GET", "/v1/audit/verify")
        ok = r.returncode == 0 and v.get("ok") is True
        row["verify"] = "ok" if ok else "FAIL"
        if not ok:
            sc.note("audit-verify rc %d: %s; API: %s" % (r.returncode, (r.stdout + r.stderr).strip()[:200],
                                                         v.get("problem")))

        # Work that did not end well: every job script exits 0.
        notdone = {}
        for j in jobs.values():
            if j["state"] != "completed":
                notdone[j["state"]] = notdone.get(j["state"], 0) + 1
        row["not completed"] = sum(notdone.values())
        if notdone:
            ex = [j for j in jobs.values() if j["state"] != "completed"][:2]
            sc.note("jobs not completed: %s, e.g. %s" % (notdone, "; ".join(
                "job %d %s: %s" % (j["id"], j["state"], j.get("reason", "")[:120]) for j in ex)))
        sc.row = row
        sc.jobs = jobs
        self.audit_seq = max([self.audit_seq] + [e["seq"] for e in entries])
        self.last_job_id = max([self.last_job_id] + list(jobs.keys()))
        return row

    # --- the scenarios --------------------------------------------------------------------------

    def begin(self, num, name, nusers=4):
        sc = Scenario(self, num, name)
        self.current = sc
        print("\n== scenario %d: %s" % (num, name), flush=True)
        self.d.ensure(sc)
        self.setup_partner(sc, nusers)
        sc.ids_from = self.max_job_id()
        sc.audit_from = self.max_audit_seq()
        sc.t0 = time.time()
        return sc

    def end(self, sc, quiet_timeout=None):
        events = self.finish_clients(sc, 300 if not self.quick else 120)
        if quiet_timeout is None:
            quiet_timeout = 120 if self.quick else 600
        row = self.check(sc, events, sc.ids_from, sc.audit_from, quiet_timeout)
        sc.seconds = time.time() - sc.t0
        if sc.num != 0:
            self.scenarios.append(sc)
        print("   " + " | ".join("%s=%s" % (k, row[k]) for k in COLUMNS[1:]), flush=True)
        return row

    def s0_selftest(self):
        """Plants one fault of each kind the checks look for and expects each one counted: a
        harness whose checks cannot fail proves nothing."""
        sc = self.begin(0, "self-test: planted faults")
        self.start_client(sc, 8, 8, threads=2)
        events = self.finish_clients(sc, 120)
        jobs = self.quiesce(sc, sc.ids_from, 120)
        acked = {}
        for e in events:
            if e.get("ev") == "ack":
                acked[e["key"]] = e["id"]
        ids = sorted(acked.values())
        if len(ids) < 6:
            raise RuntimeError("self-test: only %d jobs acknowledged" % len(ids))
        a, b, c, d, e5, f = ids[:6]
        token = open(sc.tokens_file).read().split()[0]
        # duplicated: a second job carrying an acknowledged key's name.
        dup_name = jobs[a]["name"]
        self.api.ok("POST", "/v1/jobs", {"script": "#!/bin/bash\ntrue\n", "name": dup_name,
                                         "gpus": 1, "gpu_type": "h100", "time_minutes": 2},
                    want=(202,), token=token)
        # in Slurm twice: a job behind antennad's back carrying job b's tag.
        tag = None
        for s in self.slurm_jobs():
            for t in s["tags"]:
                if int(TAG_RE.match(t).group(2)) == b:
                    tag = t
        if tag is None:
            raise RuntimeError("self-test: job %d has no tag in Slurm" % b)
        # (as root for the account: the dev cluster takes jobs from root only, docs/slurm-site.md)
        subprocess.run(["sbatch", "--uid=antenna-rel", "--gid=antenna-rel", "-Q", "-p", "gpu", "-t", "1",
                        "--comment=" + tag, "-o", "/dev/null", "--wrap", "true"],
                       env=self.slurm_env, check=True, capture_output=True)
        # ran twice: job c's line once more in the run log.
        with open(self.runlog, "a") as fh:
            fh.write("key=%s tag=%s slurm=%s\n" % (jobs[c]["name"], re.sub(r":\d+$", ":%d" % c, tag),
                                                   jobs[c].get("slurm_job_id")))
        # missing: an acknowledgement of a job that does not exist.
        fake = os.path.join(self.work, "client-0.fake.jsonl")
        with open(fake, "w") as fh:
            fh.write(json.dumps({"ev": "ack", "key": sc.prefix + "-fake", "id": 10 ** 9}) + "\n")
        time.sleep(3)
        self.quiesce(sc, sc.ids_from, 60)
        # In the database, antennad stopped: a second charge for job d (charge errors, used≠sum),
        # a hold never released for job e (held at rest), job f's job.submitted entry deleted
        # (audit gap, verify).
        self.d.term(15.0)
        con = sqlite3.connect(self.db, timeout=30)
        pid, period = con.execute("SELECT partner_id, period FROM ledger WHERE job_id = ? LIMIT 1",
                                  (d,)).fetchone()
        now = int(time.time())
        con.execute("INSERT INTO ledger (job_id, partner_id, period, kind, gpu_seconds, cpu_seconds, at)"
                    " VALUES (?, ?, ?, 'charge', 7, 0, ?)", (d, pid, period, now))
        con.execute("INSERT INTO ledger (job_id, partner_id, period, kind, gpu_seconds, cpu_seconds, at)"
                    " VALUES (?, ?, ?, 'hold', 11, 0, ?)", (e5, pid, period, now))
        n = con.execute("DELETE FROM audit WHERE action = 'job.submitted' AND "
                        "json_extract(details, '$.job') = ?", (f,)).rowcount
        con.commit()
        con.close()
        if n != 1:
            raise RuntimeError("self-test: could not delete job %d's job.submitted" % f)
        self.d.start()
        sc.clients.append({"proc": None, "log": fake, "pidfile": ""})
        row = self.check(sc, self.client_events(sc), sc.ids_from, sc.audit_from, 60)
        want = {"missing": 1, "duplicated": 1, "in Slurm twice": 1, "ran twice": 1,
                "charge errors": 1, "used≠sum": 7, "held at rest": 11, "audit gaps": 1}
        missed = ["%s=%s (planted %s)" % (k, row.get(k), v) for k, v in want.items() if row.get(k) != v]
        if row.get("verify") != "FAIL":
            missed.append("verify=%s (planted a deleted entry)" % row.get("verify"))
        self.selftest = (len(want) + 1 - len(missed), len(want) + 1, missed)
        log("self-test: %d of %d planted faults counted%s" % (
            self.selftest[0], self.selftest[1], (": missed " + ", ".join(missed)) if missed else ""))
        sc.seconds = time.time() - sc.t0
        sc.row = row
        self.selftest_sc = sc
        return row

    def s1_kills(self):
        q = self.quick
        sc = self.begin(1, "SIGKILL at random moments and at each crash point")
        count, rate = (50, 2.5) if q else (1000, 5)
        n_random = 3 if q else 20
        reps = 1 if q else 2
        # antennad restarts, ensures its Slurm associations and polls before a job can end and be
        # charged: with slurmdbd that takes a few seconds more on this 2-core machine
        point_timeout = 10 if q else 20
        # 5% (quick: 8%) of first answers are also dropped unread by the client (a timeout).
        self.start_client(sc, count, rate, threads=4 if q else 8, drop_rate=0.08 if q else 0.05)
        plan = ["random"] * n_random + [p for p in POINTS for _ in range(reps)]
        self.rng.shuffle(plan)
        kills = reached = 0
        not_reached = []
        for step in plan:
            if step == "random":
                self.sleep_load(sc, self.rng.uniform(0.8, 3.0))
                self.d.kill()
                kills += 1
                time.sleep(self.rng.uniform(0.0, 1.0))
                self.d.start()
                continue
            n = {"commit.before": 20, "commit.after": 20, "dispatch.begun": 6,
                 "dispatch.sent": 6, "charge.before": 3}[step]
            n = self.rng.randint(1, n)
            # Swap the running antennad for one armed at this point (the swap is a kill too).
            self.sleep_load(sc, self.rng.uniform(0.3, 1.5))
            self.d.kill()
            kills += 1
            self.d.start(fault="%s:%d" % (step, n))
            rc = self.d.wait(point_timeout)
            if rc is None:
                not_reached.append("%s:%d" % (step, n))
                self.d.kill()
                kills += 1
            else:
                reached += 1
                if rc != -signal.SIGKILL or "crash point reached" not in self.log_tail(3):
                    sc.note("ANTENNA_FAULT=%s:%d: antennad exited with rc %s (%s)" % (
                        step, n, rc, self.log_tail(2)))
            self.d.start()
        self.sleep_load(sc, 1.0)
        sc.kills = "%d KILL, %d/%d points hit" % (kills, reached, len(plan) - n_random)
        if not_reached:
            sc.fail("crash point not reached within %d s (ANTENNA_FAULT ignored?): %s" %
                    (point_timeout, ", ".join(not_reached)))
        # Enough submissions even if the kills went fast.
        while self.client_acked(sc) < count and sc.clients[0]["proc"].poll() is None:
            self.sleep_load(sc, 1.0)
        return self.end(sc)

    def s2_ctld_hung(self):
        q = self.quick
        sc = self.begin(2, "slurmctld hung (SIGSTOP > MessageTimeout)")
        stops = 1 if q else 3
        hold = self.msg_timeout + (4 if q else self.msg_timeout + 1)
        self.start_client(sc, 15 if q else 200, 1 if q else 5, threads=4)
        burst = 30
        for _ in range(stops):
            self.sleep_load(sc, 3.0)
            # Stop the controller while antennad is submitting. A short first stop (well under
            # MessageTimeout) lets a burst of jobs queue up in antennad; at SIGCONT antennad
            # dispatches them one after the other, and the long stop lands in that loop: as soon
            # as antennad logs its first dispatch, or 0.5 s after SIGCONT at the latest.
            self.ctld.sig(signal.SIGSTOP)
            k = self.start_client(sc, burst, 1000, threads=8, stop_file=False)
            deadline = time.time() + min(2.0, self.msg_timeout / 2.0)
            while self.client_acked(sc, k) < burst and time.time() < deadline:
                time.sleep(0.02)
            seen = os.path.getsize(self.antennad_log)
            self.ctld.sig(signal.SIGCONT)
            deadline = time.time() + 0.5
            with open(self.antennad_log, "rb") as f:
                f.seek(seen)
                buf = b""
                while time.time() < deadline and b"dispatched as" not in buf:
                    buf += f.read()
                    time.sleep(0.002)
            self.ctld.sig(signal.SIGSTOP)
            try:
                self.sleep_load(sc, hold)
            finally:
                self.ctld.sig(signal.SIGCONT)
            self.sleep_load(sc, 4.0)
        sc.kills = "%d SIGSTOP x %d s (MessageTimeout %d s)" % (stops, hold, self.msg_timeout)
        return self.end(sc)

    def s3_ctld_down(self):
        sc = self.begin(3, "slurmctld down for 60 s")
        self.start_client(sc, 200, 2.5, threads=4)
        self.sleep_load(sc, 5.0)
        sig = getattr(signal, "SIG" + os.environ.get("RELIABILITY_CTLD_SIGNAL", "TERM"))
        self.ctld.stop_for_good(sig)
        t0 = time.time()
        self.sleep_load(sc, 60.0)
        self.ctld.start()
        sc.kills = "slurmctld %s, down %.0f s" % (signal.Signals(sig).name, time.time() - t0)
        self.sleep_load(sc, 10.0)
        return self.end(sc)

    def s4_end_while_down(self):
        q = self.quick
        sc = self.begin(4, "jobs ending while antennad is down")
        kills = 2 if q else 5
        self.start_client(sc, 20 if q else 120, 2 if q else 5, threads=4, sleep=2.0)
        sc.down = []
        for _ in range(kills):
            # Wait for some of this scenario's jobs to run, then take antennad away while they end.
            deadline = time.time() + 20
            while time.time() < deadline:
                self.d.ensure(sc)
                busy = self.slurm_busy() or []
                if sum(1 for l in busy if l.endswith("RUNNING")) >= 3:
                    break
                time.sleep(0.3)
            self.d.kill()
            t0 = time.time()
            time.sleep(6.0 if q else 8.0)
            self.d.start()
            sc.down.append((t0, time.time()))
            self.sleep_load(sc, 1.0)
        sc.kills = "%d KILL, down %d s each" % (kills, 6 if q else 8)
        row = self.end(sc)
        ended = sum(1 for j in sc.jobs.values()
                    if any(a <= (rfc3339(j.get("ended_at")) or 0) < b for a, b in sc.down))
        sc.note("%d job(s) ended while antennad was down" % ended)
        if not ended:
            sc.fail("no job ended while antennad was down: the scenario tested nothing")
        return row

    def s5_term(self):
        q = self.quick
        sc = self.begin(5, "SIGTERM restarts (graceful stop)")
        n = 3 if q else 20
        self.start_client(sc, 15 if q else 250, 3 if q else 8, threads=6)
        slow, times = [], []
        for _ in range(n):
            self.sleep_load(sc, self.rng.uniform(0.8, 2.5))
            took = self.d.term(15.0)
            if took is None:
                slow.append("did not stop within 15 s of SIGTERM (killed)")
            else:
                times.append(took)
            self.d.start()
        sc.kills = "%d TERM" % n
        if times:
            sc.note("SIGTERM to exit: %.2f s at most, %.2f s on average" % (
                max(times), sum(times) / len(times)))
        if slow:
            sc.fail("%d of %d SIGTERMs: %s" % (len(slow), n, slow[0]))
        return self.end(sc)

    def scenario_slurm_jobs(self, sc, state, reason=None):
        """Slurm ids of the scenario's jobs (named by its key prefix) in `state`, and with `reason`
        when given."""
        r = subprocess.run(["squeue", "-h", "-o", "%i %j %T %r"], env=self.slurm_env,
                           capture_output=True, text=True, timeout=60)
        out = []
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 3 and f[1].startswith(sc.prefix) and f[2] == state and \
                    (reason is None or (len(f) > 3 and f[3] == reason)):
                out.append(int(f[0]))
        return out

    def s7_requeue(self):
        q = self.quick
        sc = self.begin(7, "Slurm requeues --requeue jobs; antennad killed around their charges")
        count = 16 if q else 80
        # 8 s jobs, so that some run when one is requeued
        self.start_client(sc, count, 1.0 if q else 2.0, threads=2, sleep=8.0, requeue=True)
        plan = ["requeue", "requeue+kill", "requeue+point", "requeue+kill"] * (1 if q else 4)
        kills = points = requeued = 0
        # each job at most twice: past Slurm's MaxBatchRequeue (5) a job is held or fails
        times = {}
        not_reached = []
        for step in plan:
            sids = []
            deadline = time.time() + 30
            while not sids and time.time() < deadline:
                self.d.ensure(sc)
                sids = [i for i in self.scenario_slurm_jobs(sc, "RUNNING") if times.get(i, 0) < 2]
                if not sids:
                    time.sleep(0.5)
            if not sids:
                sc.note("no job of the scenario running within 30 s: one requeue left out")
                continue
            self.sleep_load(sc, self.rng.uniform(0.5, 2.0))  # let the run use some time
            if step == "requeue+point":
                # antennad armed to die at the next charge it writes: this run's, or a job's end
                self.d.kill()
                kills += 1
                self.d.start(fault="charge.before:1")
            sid = self.rng.choice(sids)
            r = subprocess.run(["scontrol", "requeue", str(sid)],
                               env=self.slurm_env, capture_output=True, text=True)
            if r.returncode == 0:
                requeued += 1
                times[sid] = times.get(sid, 0) + 1
            else:
                sc.note("scontrol requeue: %s" % (r.stderr or r.stdout).strip()[:160])
            if step == "requeue+kill":
                time.sleep(self.rng.uniform(0.0, 1.5))
                self.d.kill()
                kills += 1
                time.sleep(self.rng.uniform(0.5, 2.0))
                self.d.start()
            elif step == "requeue+point":
                rc = self.d.wait(20)
                if rc is None:
                    not_reached.append("charge.before:1")
                    self.d.kill()
                    kills += 1
                else:
                    points += 1
                self.d.start()
        # (a requeued job runs again by itself after the credential lifetime, run.sh's 20 s:
        # forcing it sooner can land on a node that still holds its revoked credential)
        while self.client_acked(sc) < count and sc.clients[0]["proc"].poll() is None:
            self.sleep_load(sc, 1.0)
        sc.kills = "%d requeues, %d KILL, %d/%d charge points hit" % (
            requeued, kills, points, plan.count("requeue+point"))
        if not_reached:
            sc.fail("crash point not reached within 20 s: %s" % ", ".join(not_reached))
        row = self.end(sc)
        restarted = sum(1 for j in sc.jobs.values() if int(j.get("restarts") or 0) > 0)
        sc.note("%d job(s) requeued by Slurm and charged per run" % restarted)
        if not restarted:
            sc.fail("no job was requeued by Slurm: the scenario tested nothing")
        return row

    def s6_disk_full(self):
        q = self.quick
        sc = self.begin(6, "disk full, then freed (tmpfs)")
        # Move the database folder onto a small tmpfs.
        self.d.term(15.0)
        used = sum(os.path.getsize(os.path.join(self.db_dir, f)) for f in os.listdir(self.db_dir))
        size_mb = max(32, 2 * used // 2 ** 20 + 16)
        keep = os.path.join(self.work, "db.disk")
        shutil.copytree(self.db_dir, keep)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % size_mb, "tmpfs",
                        self.db_dir], check=True)
        for f in os.listdir(keep):
            shutil.copy2(os.path.join(keep, f), os.path.join(self.db_dir, f))
        self.d.start()
        self.start_client(sc, 20 if q else 150, 1.5 if q else 5, threads=4)
        self.sleep_load(sc, 3.0)
        filler = os.path.join(self.db_dir, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in (1 << 20, 4096, 512, 1):
                buf = b"\0" * chunk
                try:
                    while os.write(fd, buf) > 0:
                        pass
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        st = os.statvfs(self.db_dir)
        log("tmpfs of %d MB full: %d bytes free" % (size_mb, st.f_bavail * st.f_frsize))
        before = self.client_events(sc)
        hold = 8 if q else 20
        self.sleep_load(sc, hold / 2.0)
        try:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=5)
            c.request("GET", "/healthz")
            r = c.getresponse()
            sc.note("GET /healthz while full: %d %s" % (r.status, r.read()[:160].decode("utf-8", "replace")))
            c.close()
        except (OSError, http.client.HTTPException) as e:
            sc.note("GET /healthz while full: no answer (%s)" % e)
        self.sleep_load(sc, hold / 2.0)
        during = self.client_events(sc)[len(before):]
        os.unlink(filler)
        log("filler deleted")
        codes = {}
        for e in during:
            if e.get("ev") == "status":
                codes[e["code"]] = codes.get(e["code"], 0) + 1
        acks = sum(1 for e in during if e.get("ev") == "ack")
        sc.note("while full (%d s): %d acknowledged, answers %s" % (hold, acks, codes or "none but 202"))
        if not codes and acks:
            sc.note("writes did not fail while the disk was full: the fill did not bite")
        elif codes and not codes.get(503):
            sc.fail("no 503 + Retry-After while the disk was full (got %s)" % codes)
        self.sleep_load(sc, 5.0)
        sc.kills = "tmpfs %d MB full %d s" % (size_mb, hold)
        return self.end(sc)

    # --- the table ------------------------------------------------------------------------------

    def table(self):
        rows = [[str(sc.row.get(c, "")) for c in COLUMNS] for sc in self.scenarios]
        return "| " + " | ".join(COLUMNS) + " |\n|" + "|".join(
            "---" for _ in COLUMNS) + "|\n" + "".join("| " + " | ".join(r) + " |\n" for r in rows)

    def failed(self):
        bad = []
        for sc in self.scenarios:
            for c in ZERO_COLS:
                if sc.row.get(c) not in (0, "0"):
                    bad.append("%d/%s=%s" % (sc.num, c, sc.row.get(c)))
            if sc.row.get("verify") != "ok":
                bad.append("%d/verify" % sc.num)
            bad += ["%d/%s" % (sc.num, f) for f in sc.failures]
        if self.selftest is not None and self.selftest[2]:
            bad.append("self-test missed: %s" % ", ".join(self.selftest[2]))
        return bad

    def tmpfs_unavailable(self):
        """Why a tmpfs cannot be mounted here (scenario 6 needs one), or "" when it can."""
        probe = os.path.join(self.work, "tmpfs-probe")
        os.makedirs(probe, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return "cannot mount a tmpfs on this machine (%s)" % (r.stderr.strip() or "mount failed")
        subprocess.run(["umount", probe], capture_output=True)
        return ""

    def skipped_text(self):
        return "".join("Scenario %d was NOT run: %s.\n" % (n, why) for n, why in self.skipped)

    def selftest_text(self):
        if self.selftest is None:
            return "Self-test (planted faults) not run (RELIABILITY_SELFTEST=1 runs it)."
        got, total, missed = self.selftest
        return ("Self-test: %d of %d planted faults counted (a missing acknowledged job, a duplicated "
                "key, a job in Slurm twice, a run twice, a second charge, a hold never released, a "
                "deleted audit entry)%s." % (got, total, ": MISSED " + ", ".join(missed) if missed else ""))

    def write_doc(self, elapsed, commit):
        """Rewrites the doc: the fixed text, and the latest run of this mode (full or quick); the
        latest run of the other mode is kept as it was, so that a quick pass in `make test` does
        not erase the full results."""
        if not self.doc or self.doc == "-":
            return
        mode = "quick" if self.quick else "full"
        notes = ""
        for sc in self.scenarios + ([self.selftest_sc] if self.selftest_sc else []):
            notes += "\n**%d. %s** (%.0f s)\n\n" % (sc.num, sc.name, sc.seconds)
            for n in sc.failures:
                notes += "- FAIL: %s\n" % n
            for n in sc.notes:
                notes += "- %s\n" % n
        bad = self.failed()
        verdict = ("PASS: every cell is 0." if not bad else
                   "FAIL: %d non-zero cell(s) or failed check(s)." % len(bad))
        only = (" (only scenarios %s)" % ",".join(str(x) for x in sorted(self.only))
                if self.only else "")
        section = RUN_SECTION.format(
            mode=mode, title="full run" if mode == "full" else "quick run (RELIABILITY_QUICK=1)",
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=commit,
            elapsed=elapsed, seed=self.seed, only=only, table=self.table(), verdict=verdict,
            selftest=self.selftest_text() + ("\n\n" + self.skipped_text() if self.skipped else ""),
            notes=notes)
        sections = {"full": "<!-- run:full -->\n## Latest full run\n\nNot run yet.\n<!-- /run:full -->\n",
                    "quick": "<!-- run:quick -->\n## Latest quick run (RELIABILITY_QUICK=1)\n\n"
                             "Not run yet.\n<!-- /run:quick -->\n"}
        try:
            old = open(self.doc).read()
            for m in ("full", "quick"):
                found = re.search(r"<!-- run:%s -->.*?<!-- /run:%s -->\n" % (m, m), old, re.S)
                if found:
                    sections[m] = found.group(0)
        except OSError:
            pass
        sections[mode] = section
        text = DOC.format(
            points="\n".join("| `%s` | %s |" % (p, POINT_WHAT[p]) for p in POINTS),
            msg_timeout=self.msg_timeout, full=sections["full"], quick=sections["quick"])
        tmp = self.doc + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.doc)
        log("wrote %s" % self.doc)

    def run(self):
        print("== reliability: %s mode, seed %d (RELIABILITY_SEED=%d reproduces the kill moments)" %
              ("quick" if self.quick else "full", self.seed, self.seed), flush=True)
        self.d.start()
        steps = [(1, self.s1_kills), (2, self.s2_ctld_hung), (3, self.s3_ctld_down),
                 (4, self.s4_end_while_down), (5, self.s5_term), (6, self.s6_disk_full),
                 (7, self.s7_requeue)]
        # The self-test breaks the audit chain on purpose: it runs last.
        st = os.environ.get("RELIABILITY_SELFTEST", "0" if self.quick else "1")
        if st not in ("", "0"):
            steps.append((0, self.s0_selftest))
        for num, fn in steps:
            if self.only is not None and num not in self.only and num != 0:
                continue
            if num == 3 and self.quick:
                print("\n== scenario 3: skipped in quick mode (60 s outage)", flush=True)
                continue
            if num == 6:
                why = self.tmpfs_unavailable()
                if why:
                    print("\n== scenario 6: SKIPPED: %s" % why, flush=True)
                    self.skipped.append((6, why))
                    continue
            try:
                fn()
            except Exception as e:  # a scenario that breaks the harness is a failed row, not a hang
                import traceback
                traceback.print_exc()
                sc = self.current if self.current is not None and self.current.num == num \
                    else Scenario(self, num, fn.__name__)
                sc.fail("harness error: %s: %s" % (type(e).__name__, e))
                sc.row = dict({c: "ERR" for c in COLUMNS},
                              scenario="%d. %s (harness error)" % (num, sc.name))
                self.stop_clients(sc)
                if num == 0:
                    self.selftest = (0, 9, ["harness error: %s" % e])
                    self.selftest_sc = sc
                elif sc not in self.scenarios:
                    self.scenarios.append(sc)
                try:
                    self.ctld.sig(signal.SIGCONT)
                    if self.ctld.pid() is None:
                        self.ctld.start()
                    if not self.d.alive():
                        self.d.start()
                except Exception:
                    pass
        elapsed = time.time() - self.t0
        commit = subprocess.run(["git", "-C", self.root, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "?"
        print("\n== reliability results (%s mode, %.0f s, commit %s, seed %d)\n" % (
            "quick" if self.quick else "full", elapsed, commit, self.seed))
        print(self.table())
        print(self.selftest_text() + "\n")
        if self.skipped:
            print(self.skipped_text())
        for sc in self.scenarios:
            for f in sc.failures:
                print("FAIL %d: %s" % (sc.num, f))
        self.write_doc(elapsed, commit)
        bad = self.failed()
        print("\nreliability: %s" % (("PASS (every cell 0%s)" % "".join(
            "; scenario %d NOT run: %s" % (n, w) for n, w in self.skipped)) if not bad else
                                     "FAIL (%d): %s" % (len(bad), ", ".join(bad[:12]))))
        for p in self.clients:
            if p.poll() is None:
                p.kill()
        return 0 if not bad else 1


DOC = """# Reliability: the fault harness

`make reliability` (`tests/reliability/`) starts its own Slurm cluster (free ports, `MessageTimeout`
lowered to {msg_timeout} s) and its own antennad in a private folder, runs the scenarios below under load,
and after each one, with the cluster quiet, counts what went wrong. Every cell but the first three must
read 0 (and `verify` ok); the target exits non-zero otherwise. Each run rewrites this file, and the
section of its mode (full or quick) below.

```sh
make reliability BUILD=build-h                     # full: ~2,300 submissions, 40 kills, ~9 min
RELIABILITY_QUICK=1 make reliability BUILD=build-h # quick: ~200 submissions, no 60 s outage, ~2 min
```

Knobs: `RELIABILITY_ONLY=1,5` (these scenarios), `RELIABILITY_SEED=N` (replay the random kill
moments), `RELIABILITY_KEEP=1` (keep the private folder: logs, client records, database),
`RELIABILITY_DOC=-` (write no doc), `RELIABILITY_SELFTEST=0|1` (planted-fault self-test, on in full
mode), `RELIABILITY_MSG_TIMEOUT=5`, `RELIABILITY_CTLD_SIGNAL=TERM|KILL` (how slurmctld goes down in
scenario 3). Times are those of a 2-core machine.

```text
scenario                                 what is done to it
1 SIGKILL at random moments + at points  >= 1,000 submissions (quick: ~100) by 8 clients; 20 SIGKILLs at
                                         random moments (quick: 3); each crash point twice (quick: once),
                                         ANTENNA_FAULT=<point>:<n> with a random n; 5% of first answers
                                         (quick: 8%) dropped unread by the client (a timeout)
2 slurmctld hung                         SIGSTOP for 2 x MessageTimeout + 1 s, 3 times (quick: once, for
                                         MessageTimeout + 4 s), timed to land while antennad submits a
                                         burst of 30 jobs
3 slurmctld down 60 s                    SIGTERM, 60 s under load, restarted from its saved state (not quick)
4 jobs ending while antennad is down     2 s jobs; SIGKILL while they run, 8 s down (quick: 6 s), 5 times
                                         (quick: 2); at least one job must end in the gap
5 SIGTERM restarts                       20 (quick: 3) graceful stops under load, each must exit in 15 s
6 disk full, then freed                  the database folder on a 32 MB tmpfs, filled to ENOSPC under load
                                         for 20 s (quick: 8 s), then freed; clients must see 503 +
                                         Retry-After, and everything must resume
7 Slurm requeues --requeue jobs          16 (quick: 4) scontrol requeue of a running job of 8 s, each alone,
                                         followed by a SIGKILL of antennad, or with antennad armed at
                                         ANTENNA_FAULT=charge.before:1; every job must be charged
                                         once per run (its runs listed), none may run unrecorded
0 self-test                              one fault of each kind planted (a fake ack, a duplicate, a job in
                                         Slurm twice, a run twice, a second charge, a dangling hold, a
                                         deleted audit entry): each must be counted (last; full mode)
```

## How it works

- **Load**: `client.py` (Python stdlib) runs concurrent submitters. Each submission has its own
  `Idempotency-Key`, also used as the job's `name`, so every antennad job can be matched to the key
  that made it. On a lost answer (refused, reset, timeout) or a 503 the client retries the **same key**
  until it gets 202 (honouring `Retry-After`); it records every key sent and every job id acknowledged.
- **Faults**: SIGKILL of antennad at random moments and at each named crash point
  (`ANTENNA_FAULT=<point>:<n>`, `scheduler/fault.h`; a point antennad does not reach within a time limit
  is reported "not reached" and fails the row), SIGSTOP of slurmctld beyond `MessageTimeout`,
  slurmctld stopped for 60 s and restarted from its saved state, SIGKILL while jobs end, SIGTERM
  restarts, the database folder on a tmpfs filled until writes fail and then freed. If antennad exits
  without being told to, the harness restarts it (as systemd would) and fails the row.
- **Checks** (per scenario: its own partner, users and keys), through the API as admin:
  acknowledged jobs missing (`GET /v1/jobs/{{id}}` by the acknowledged id, name = key); keys with more
  than one antennad job; antennad jobs in Slurm more than once (`scontrol -o show job`, tag
  `antenna:<instance>:<job id>` in Comment or AdminComment); jobs that ran twice (every job script
  appends `key= tag= slurm=` to a shared log); charge errors (a finished job's `charge_gpu_hours` must be
  GPUs x min(elapsed, limit) x weight, and the ledger, read-only, must hold exactly one charge row for a
  job that ran); `used≠sum` (GPU-seconds between the quota's `used`, `GET /v1/usage` and the sum of job
  charges); `held at rest` (GPU-seconds still held); audit gaps (each job one `job.submitted`, each
  finished job one `job.finished`); `verify` (`antennad audit-verify` offline and `GET /v1/audit/verify`);
  `bad answers` (answers other than 202 and 503 + Retry-After); `not completed` (every test job exits 0).

## Crash points

| point | where, and what surviving it proves |
|---|---|
{points}

{full}
{quick}"""


RUN_SECTION = """<!-- run:{mode} -->
## Latest {title}

{date}, commit `{commit}`, {elapsed:.0f} s, seed {seed}{only}.

{table}
{verdict} {selftest}

### Notes and evidence
{notes}<!-- /run:{mode} -->
"""


def main():
    p = argparse.ArgumentParser()
    for f in ("root", "build", "work", "config", "slurm-conf", "doc"):
        p.add_argument("--" + f, required=True)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    h = Harness(a)

    def on_term(signum, frame):
        for c in h.clients:
            if c.poll() is None:
                c.kill()
        h.ctld.sig(signal.SIGCONT)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    try:
        return h.run()
    finally:
        for c in h.clients:
            if c.poll() is None:
                c.kill()


if __name__ == "__main__":
    sys.exit(main())
