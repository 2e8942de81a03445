#!/usr/bin/env python3
"""larkgate benchmark harness: larkgate and its Rust client side by side with
the official Feishu/Lark SDKs, on lark-emulator (a local Open Platform).

    python3 bench/bench.py [--runs 5] [--quick] [--scenarios ingest,turn,idle,streaming]
                           [--clients lark-client,larkgate,node-sdk,python-sdk]
                           [--python PATH] [--out FILE] [--no-docs-copy]

Usually started by bench/run-all.sh. Needs the release binaries
target/release/{lark-emulator,larkgate,examples/bench_ingest}, bench/node with
node_modules (npm ci) and a Python with lark-oapi (`bash tools/sdk-venv.sh`
prints it; --python or $LARK_SDK_PYTHON, else that script is run).

It starts `lark-emulator --port P --no-chat-rate-limit`, then for each scenario
starts the client under test as its own process and measures it from /proc
(CPU = sum of the first field of /proc/PID/task/*/schedstat, falling back to
utime+stime; RSS = VmRSS, peak = VmHWM, threads = Threads):

  ingest     per client (lark-client = bench_ingest, larkgate, node-sdk,
             python-sdk): POST /_emulator/bench/push at rate max / 1000 / 100
             events/s; acked/s, ack latency, client CPU us per event, peak RSS,
             emulator CPU. Plus one rate-max push to lark-client for the
             emulator's own ceiling.
  turn       larkgate + bench/llm_server.py (first token at once, 40 chars in
             2 chunks), C = 10 and 100 concurrent DMs from new users:
             delivered->LLM request, first token->first chat update, CPU and
             platform API calls per turn; the same with the echo agent.
  idle       larkgate with 1 and 10 accounts: spawn->/healthz 200, RSS and
             threads after 5 s idle, binary size (and stripped); idle RSS of
             bench_ingest and the SDK clients.
  streaming  larkgate + llm_server --chars 2000 --chunk 10 --interval-ms 15:
             API calls for one streamed reply by route, card updates per
             second, rate-limit errors (230020, 99991400, HTTP 429).

Each scenario is repeated --runs times (--quick: 1 run, small counts). The
result (machine, versions, every run of every metric with median/min/max, and
the raw per-run records) goes to bench/results/<UTC timestamp>.json and is
copied to docs/bench/results.json; bench/report.py turns it into tables and
SVG plots.
"""

import argparse
import concurrent.futures as cf
import datetime as dt
import glob
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
EMULATOR_BIN = os.path.join(RELEASE, "lark-emulator")
LARKGATE_BIN = os.path.join(RELEASE, "larkgate")
INGEST_BIN = os.path.join(RELEASE, "examples", "bench_ingest")
NODE_DIR = os.path.join(BENCH, "node")
LLM_SERVER = os.path.join(BENCH, "llm_server.py")

sys.path.insert(0, BENCH)
from llm_server import LLMServer  # noqa: E402  (the reply text the LLM will send)

RATE_LIMIT_CODES = ("230020", "99991400", "429")
REACTION_ROUTE = re.compile(r"/reactions")
SCHEMA_VERSION = 1


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Small utilities: ports, HTTP, statistics
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rand_hex(n: int) -> str:
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


def http_json(method: str, url: str, body=None, timeout: float = 30.0):
    """One request on a fresh connection; returns (status, parsed JSON or text)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        path = u.path + (("?" + u.query) if u.query else "")
        conn.request(method, path or "/", body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def http_status(url: str, timeout: float = 1.0) -> int:
    """Status of GET url, 0 when nothing answers."""
    try:
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        try:
            conn.request("GET", u.path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()
    except OSError:
        return 0


def pct(values, q: float):
    """Nearest-rank percentile (q in 0..1) of a list; None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round((len(s) - 1) * q)))]


def summarize(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# ---------------------------------------------------------------------------
# /proc readers
# ---------------------------------------------------------------------------


def proc_cpu_ns(pid: int) -> int:
    """CPU time of all live threads of pid (ns): schedstat, else utime+stime."""
    total, ok = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
                ok = True
        except (OSError, ValueError, IndexError):
            pass
    return total if ok else proc_stat_cpu_ns(pid)


def proc_stat_cpu_ns(pid: int) -> int:
    """utime+stime of the whole process incl. exited threads (clock ticks -> ns)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0


def proc_status(pid: int) -> dict:
    """VmRSS / VmHWM (bytes) and Threads of pid."""
    out = {"rss_bytes": None, "hwm_bytes": None, "threads": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "VmRSS":
                    out["rss_bytes"] = int(v.split()[0]) * 1024
                elif k == "VmHWM":
                    out["hwm_bytes"] = int(v.split()[0]) * 1024
                elif k == "Threads":
                    out["threads"] = int(v)
    except OSError:
        pass
    return out


def proc_threads_cpu_ns(pid: int) -> dict:
    """{"<comm>/<tid>": schedstat ns} for each live thread of pid."""
    out = {}
    for d in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(d + "/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(d + "/comm") as f:
                comm = f.read().strip()
            out[f"{comm}/{os.path.basename(d)}"] = ns
        except (OSError, ValueError, IndexError):
            pass
    return out


class CpuMeter:
    """CPU delta of one process: schedstat (precise) and stat (incl. dead
    threads), and per thread (by name) when asked."""

    def __init__(self, pid: int, threads: bool = False):
        self.pid = pid
        self.t0 = time.monotonic()
        self.threads0 = proc_threads_cpu_ns(pid) if threads else None
        self.sched0 = proc_cpu_ns(pid)
        self.stat0 = proc_stat_cpu_ns(pid)

    def read(self) -> dict:
        out = {
            "cpu_ns": proc_cpu_ns(self.pid) - self.sched0,
            "cpu_stat_ns": proc_stat_cpu_ns(self.pid) - self.stat0,
            "wall_s": time.monotonic() - self.t0,
        }
        if self.threads0 is not None:
            by_name = {}
            for k, v in proc_threads_cpu_ns(self.pid).items():
                name = k.rsplit("/", 1)[0]
                by_name[name] = by_name.get(name, 0) + v - self.threads0.get(k, 0)
            out["threads_ns"] = by_name
        return out


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


class Proc:
    """A child process we started; stopped by its own pid only."""

    live = []

    def __init__(self, name: str, argv, cwd=None, env=None, log_path=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"bench-{name}-{os.getpid()}.log")
        self.log_file = open(self.log_path, "wb")
        self.t_spawn = time.monotonic()
        self.t_spawn_ns = time.time_ns()
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=self.log_file, stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def cpu_ns(self) -> int:
        return proc_cpu_ns(self.pid)

    def status(self) -> dict:
        return proc_status(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
            except ProcessLookupError:
                pass
        self.log_file.close()
        if self in Proc.live:
            Proc.live.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for p in list(cls.live):
            try:
                p.stop(3)
            except Exception:
                pass


def wait_until(pred, timeout: float, interval: float = 0.01, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------


class Emulator:
    def __init__(self, workdir: str, extra_args=()):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc("lark-emulator",
                         [EMULATOR_BIN, "--port", str(self.port), "--no-chat-rate-limit", *extra_args],
                         log_path=os.path.join(workdir, "lark-emulator.log"))
        wait_until(lambda: self._up(), 30, 0.05, "lark-emulator's /_emulator/stats")
        self.default_app = self.get("/_emulator/apps")["apps"][0]

    def _up(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError(f"lark-emulator exited:\n{self.proc.tail()}")
        return http_status(self.url + "/_emulator/stats") == 200

    def get(self, path: str, timeout: float = 30):
        status, body = http_json("GET", self.url + path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body}")
        return body

    def post(self, path: str, body, timeout: float = 30):
        status, resp = http_json("POST", self.url + path, body, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"POST {path}: HTTP {status} {resp}")
        return resp

    def create_app(self, label: str) -> dict:
        app_id = "cli_" + rand_hex(16)
        return self.post("/_emulator/apps", {"app_id": app_id, "app_secret": "benchsecret" + rand_hex(21),
                                             "bot_name": f"Bench {label}"})

    def app_stats(self, app_id: str) -> dict:
        return self.get("/_emulator/stats")["apps"].get(app_id, {})

    def wait_connections(self, app_id: str, n: int, timeout: float, proc: Proc = None) -> float:
        """Waits until app_id has n live long connections; returns when (monotonic)."""

        def ok():
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            return self.app_stats(app_id).get("connections", 0) >= n

        wait_until(ok, timeout, 0.01, f"{n} connection(s) of {app_id}")
        return time.monotonic()

    def push(self, app_id: str, count: int, rate: float, timeout_secs: int = 120) -> dict:
        return self.post("/_emulator/bench/push",
                         {"app_id": app_id, "count": count, "rate": rate, "chats": 1,
                          "timeout_secs": timeout_secs}, timeout=timeout_secs + 60)

    def timeline(self, on: bool) -> None:
        self.post("/_emulator/bench/timeline", {"on": on})

    def timeline_entries(self) -> list:
        return self.get("/_emulator/bench/timeline")["entries"]

    def send_dm(self, app_id: str, sender: str, name: str, text: str) -> dict:
        return self.post("/_emulator/messages", {"app_id": app_id, "chat_type": "p2p",
                                                 "sender_open_id": sender, "sender_name": name, "text": text})

    def chat(self, chat_id: str, wait_version=None, timeout_ms: int = 5000) -> dict:
        q = f"?wait_version={wait_version}&timeout_ms={timeout_ms}" if wait_version is not None else ""
        return self.get(f"/_emulator/chats/{chat_id}/messages{q}", timeout=timeout_ms / 1000 + 10)


# ---------------------------------------------------------------------------
# Clients under test
# ---------------------------------------------------------------------------


def larkgate_config(workdir: str, emu: Emulator, apps, agent: str, llm_url=None, admin_port=None,
                    stream_interval_ms=None) -> str:
    """Writes larkgate.toml into workdir (apps[0] = default account, the rest
    as accounts.bN) and returns its path."""
    admin_port = admin_port or free_port()
    lines = [
        "[channels.lark]",
        f'appId = "{apps[0]["app_id"]}"',
        f'appSecret = "{apps[0]["app_secret"]}"',
        f'domain = "{emu.url}"',
        'mode = "websocket"',
        'dmPolicy = "open"',
        'groupPolicy = "open"',
        "requireMention = true",
        "typingIndicator = true",
        'replyMode = "streaming"',
        f'agent = "{agent}"',
    ]
    if stream_interval_ms is not None:
        lines.append(f"streamIntervalMs = {stream_interval_ms}")
    for i, app in enumerate(apps[1:], start=1):
        lines += ["", f"[channels.lark.accounts.b{i}]", f'appId = "{app["app_id"]}"',
                  f'appSecret = "{app["app_secret"]}"']
    if agent == "llm":
        lines += ["", "[agents.llm]", 'type = "openai"', f'baseUrl = "{llm_url}/v1"', 'model = "bench"',
                  'apiKey = "x"']
    lines += ["", "[store]", 'url = "sqlite://larkgate.db"', "", "[admin]", "enabled = true",
              f'listen = "127.0.0.1:{admin_port}"', "", "[log]", 'level = "warn"', 'dir = ""', ""]
    path = os.path.join(workdir, "larkgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


class Larkgate:
    """larkgate run with its own temp dir, config and admin port."""

    def __init__(self, emu: Emulator, apps, agent: str = "echo", llm_url=None, label="larkgate",
                 stream_interval_ms=None):
        self.dir = tempfile.mkdtemp(prefix=f"bench-{label}-")
        self.admin_port = free_port()
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.config = larkgate_config(self.dir, emu, apps, agent, llm_url, self.admin_port, stream_interval_ms)
        self.apps = apps
        r = subprocess.run([LARKGATE_BIN, "config", "validate", "--config", self.config],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"larkgate config validate failed:\n{r.stdout}{r.stderr}")
        self.proc = Proc(label, [LARKGATE_BIN, "run", "--config", self.config], cwd=self.dir,
                         log_path=os.path.join(emu.workdir, f"{label}-{self.admin_port}.log"))
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 30, interval: float = 0.002) -> float:
        """Polls /healthz every `interval` s; returns seconds from spawn to 200."""

        def ok():
            if not self.proc.alive():
                raise RuntimeError(f"larkgate exited:\n{self.proc.tail()}")
            return http_status(self.admin + "/healthz", timeout=0.5) == 200

        wait_until(ok, timeout, interval, "larkgate /healthz 200")
        return time.monotonic() - self.proc.t_spawn

    def metrics(self) -> dict:
        """The Prometheus exposition as {'name{labels}': value}."""
        try:
            u = urllib.parse.urlsplit(self.admin)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def stop(self) -> None:
        self.proc.stop(15)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_sdk_client(kind: str, emu: Emulator, app: dict, python: str, workdir: str) -> Proc:
    """lark-client (bench_ingest), node-sdk or python-sdk connected to app."""
    args = ["--base-url", emu.url, "--app-id", app["app_id"], "--app-secret", app["app_secret"]]
    logp = os.path.join(workdir, f"{kind}.log")
    if kind == "lark-client":
        return Proc(kind, [INGEST_BIN, *args], log_path=logp)
    if kind == "node-sdk":
        return Proc(kind, ["node", os.path.join(NODE_DIR, "ingest.mjs"), *args], cwd=NODE_DIR, log_path=logp)
    if kind == "python-sdk":
        return Proc(kind, [python, os.path.join(BENCH, "python", "ingest.py"), *args], log_path=logp)
    raise ValueError(kind)


class Client:
    """A running client under test (any kind) with its pid and app."""

    def __init__(self, kind: str, emu: Emulator, python: str, workdir: str):
        self.kind = kind
        self.app = emu.create_app(kind)
        self.lg = None
        if kind == "larkgate":
            self.lg = Larkgate(emu, [self.app], agent="echo", label="larkgate-ingest")
            self.proc = self.lg.proc
        else:
            self.proc = start_sdk_client(kind, emu, self.app, python, workdir)
        self.pid = self.proc.pid
        try:
            self.connect_s = emu.wait_connections(self.app["app_id"], 1, 60, self.proc) - self.proc.t_spawn
            if self.lg is not None:
                self.lg.wait_ready(30, 0.01)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.lg is not None:
            self.lg.stop()
        else:
            self.proc.stop()


class LLM:
    """bench/llm_server.py on a free port."""

    def __init__(self, workdir: str, *extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc("llm_server", [sys.executable, LLM_SERVER, "--port", str(self.port), *extra],
                         log_path=os.path.join(workdir, f"llm_server-{self.port}.log"))
        wait_until(lambda: self._up(), 15, 0.05, "llm_server")

    def _up(self):
        if not self.proc.alive():
            raise RuntimeError(f"llm_server exited:\n{self.proc.tail()}")
        return http_status(self.url + "/_timeline") == 200

    def reset(self):
        http_json("POST", self.url + "/_timeline/reset", {})

    def timeline(self) -> list:
        return http_json("GET", self.url + "/_timeline")[1]

    def stop(self):
        self.proc.stop()


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


class Results:
    """Metric values per run, plus raw per-run records."""

    def __init__(self):
        self.metrics = {}  # key -> entry
        self.raw = {}  # scenario -> list of records
        self.errors = []
        self.notes = []

    def add(self, scenario: str, subject: str, case: str, metric: str, value, unit: str,
            better: str = "lower") -> None:
        key = ".".join(x for x in (scenario, subject, case, metric) if x)
        e = self.metrics.setdefault(key, {"key": key, "scenario": scenario, "subject": subject, "case": case,
                                          "metric": metric, "unit": unit, "better": better, "runs": []})
        e["runs"].append(value)

    def record(self, scenario: str, rec: dict) -> None:
        self.raw.setdefault(scenario, []).append(rec)

    def error(self, scenario: str, msg: str) -> None:
        log(f"ERROR in {scenario}: {msg}")
        self.errors.append({"scenario": scenario, "error": msg})

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            log(f"note: {msg}")
            self.notes.append(msg)

    def finalized(self) -> list:
        out = []
        for e in self.metrics.values():
            e = dict(e)
            e.update(summarize(e["runs"]))
            out.append(e)
        return out


# ---------------------------------------------------------------------------
# Scenario: ingest
# ---------------------------------------------------------------------------

RATE_CASES_FULL = [  # (case, rate, count, python count)
    ("rate_max", 0, 20000, 5000),
    ("rate_1000", 1000, 10000, 10000),
    ("rate_100", 100, 1000, 1000),
]
RATE_CASES_QUICK = [
    ("rate_max", 0, 3000, 1000),
    ("rate_1000", 1000, 2000, 2000),
    ("rate_100", 100, 200, 200),
]


def scenario_ingest(emu: Emulator, res: Results, args, run: int) -> None:
    cases = RATE_CASES_QUICK if args.quick else RATE_CASES_FULL
    for kind in args.clients:
        client = None
        try:
            client = Client(kind, emu, args.python, args.workdir)
            time.sleep(1.0)
            pushed_total = 0
            for case, rate, count, py_count in cases:
                n = py_count if kind == "python-sdk" else count
                s0 = emu.app_stats(client.app["app_id"])
                cpu = CpuMeter(client.pid, threads=True)
                ecpu = CpuMeter(emu.proc.pid)
                r = emu.push(client.app["app_id"], n, rate, timeout_secs=args.push_timeout)
                c, ec = cpu.read(), ecpu.read()
                st = client.proc.status()
                pushed_total += n
                drain_s = drain(emu, client.app["app_id"], pushed_total, args.drain_secs)
                s1 = emu.app_stats(client.app["app_id"])
                codes = {k: v - s0.get("ack_codes", {}).get(k, 0) for k, v in s1.get("ack_codes", {}).items()
                         if v - s0.get("ack_codes", {}).get(k, 0)}
                redelivered = s1.get("events_redelivered", 0) - s0.get("events_redelivered", 0)
                acked = min(r.get("acked", 0), n)
                per_ev = c["cpu_ns"] / 1000 / acked if acked else None
                res.record("ingest", {"run": run, "client": kind, "case": case, "rate": rate, "count": n,
                                      "push": r, "client_cpu": c, "emulator_cpu_proc": ec, "client_status": st,
                                      "ack_codes": codes, "redelivered": redelivered, "drain_s": drain_s})
                nacks = sum(v for k, v in codes.items() if k != "200")
                res.add("ingest", kind, case, "non_200_acks", nacks, "acks")
                if "refused" in r:
                    res.add("ingest", kind, case, "refused", r["refused"], "events")
                if drain_s is None:
                    res.note(f"ingest {kind} {case} run {run}: events still unacked {args.drain_secs:.0f} s "
                             f"after the push; later pushes of this client may count their acks")
                if nacks or redelivered or r.get("acked", 0) != n:
                    res.note(f"ingest {kind} {case} run {run}: the push reports {r.get('acked')} of {n} acked"
                             f"{', ' + str(r['refused']) + ' refused' if 'refused' in r else ''}; ack codes "
                             f"during it {codes}, {redelivered} redeliveries"
                             f"{' (acks of earlier refused events count too)' if r.get('acked', 0) > n else ''}")
                res.add("ingest", kind, case, "acked_per_sec", r.get("acked_per_sec"), "events/s", "higher")
                res.add("ingest", kind, case, "acked_ratio", acked / n if n else None, "fraction", "higher")
                lat = r.get("ack_latency_us", {})
                for q in ("p50", "p99", "max"):
                    v = lat.get(q)
                    res.add("ingest", kind, case, f"ack_{q}_ms", None if v is None else v / 1000, "ms")
                res.add("ingest", kind, case, "cpu_us_per_event", per_ev, "µs/event")
                res.add("ingest", kind, case, "cpu_stat_us_per_event",
                        c["cpu_stat_ns"] / 1000 / acked if acked else None, "µs/event")
                res.add("ingest", kind, case, "client_cpu_pct", 100 * c["cpu_ns"] / 1e9 / c["wall_s"], "% of a core")
                res.add("ingest", kind, case, "peak_rss_mb", st["hwm_bytes"] / 1e6 if st["hwm_bytes"] else None, "MB")
                res.add("ingest", kind, case, "threads", st["threads"], "threads")
                res.add("ingest", kind, case, "emulator_cpu_us_per_event",
                        r.get("emulator_cpu_secs", 0) * 1e6 / n, "µs/event")
                res.add("ingest", kind, case, "emulator_cpu_proc_us_per_event", ec["cpu_ns"] / 1000 / n, "µs/event")
                if c["cpu_stat_ns"] > 1.2 * c["cpu_ns"] + 50e6:
                    res.note(f"ingest {kind} {case}: utime+stime ({c['cpu_stat_ns'] / 1e6:.0f} ms) exceeds the "
                             f"live threads' schedstat ({c['cpu_ns'] / 1e6:.0f} ms): threads exited meanwhile")
                log(f"ingest {kind:11s} {case:9s} n={n:6d}: {r.get('acked_per_sec', 0):9.0f} acked/s, "
                    f"p50 {lat.get('p50', 0) / 1000:7.2f} ms, p99 {lat.get('p99', 0) / 1000:8.2f} ms, "
                    f"client {per_ev or 0:7.1f} µs/ev, emulator "
                    f"{r.get('emulator_cpu_secs', 0) * 1e6 / n:6.1f} µs/ev, peak RSS "
                    f"{(st['hwm_bytes'] or 0) / 1e6:6.1f} MB")
            if kind == "lark-client":
                _emulator_ceiling(emu, client, res, args, run, cases[0][2], pushed_total)
        except Exception as e:  # keep going with the other clients
            res.error("ingest", f"{kind}: {e}")
        finally:
            if client is not None:
                client.stop()


def drain(emu: Emulator, app_id: str, pushed_total: int, limit_s: float):
    """Waits until every event pushed to app_id so far was acked with 200
    (refused ones come back as redeliveries), so the next push starts clean.
    Returns the seconds waited, None if the limit passed first."""
    t0 = time.monotonic()
    try:
        def done():
            st = emu.app_stats(app_id)
            return st.get("events_acked", 0) + st.get("events_dropped", 0) >= pushed_total

        wait_until(done, limit_s, 0.05, "redeliveries to be acked")
        return time.monotonic() - t0
    except TimeoutError:
        return None


def _emulator_ceiling(emu: Emulator, client: Client, res: Results, args, run: int, count: int,
                      pushed_total: int) -> None:
    """One more rate-max push to the cheapest client: the emulator's own cost."""
    s0 = emu.app_stats(client.app["app_id"])
    ecpu = CpuMeter(emu.proc.pid)
    r = emu.push(client.app["app_id"], count, 0, timeout_secs=args.push_timeout)
    ec = ecpu.read()
    drain(emu, client.app["app_id"], pushed_total + count, args.drain_secs)
    s1 = emu.app_stats(client.app["app_id"])
    codes = {k: v - s0.get("ack_codes", {}).get(k, 0) for k, v in s1.get("ack_codes", {}).items()
             if v - s0.get("ack_codes", {}).get(k, 0)}
    res.record("emulator", {"run": run, "count": count, "push": r, "emulator_cpu_proc": ec, "ack_codes": codes})
    if r.get("acked", 0) != count:
        res.note(f"emulator ceiling run {run}: push acked {r.get('acked')} of {count}, ack codes {codes}")
    res.add("emulator", "lark-emulator", "rate_max", "events_per_sec", r.get("acked_per_sec"), "events/s", "higher")
    res.add("emulator", "lark-emulator", "rate_max", "cpu_us_per_event",
            r.get("emulator_cpu_secs", 0) * 1e6 / count, "µs/event")
    res.add("emulator", "lark-emulator", "rate_max", "cpu_proc_us_per_event", ec["cpu_ns"] / 1000 / count,
            "µs/event")
    log(f"emulator ceiling: {r.get('acked_per_sec', 0):.0f} events/s, "
        f"{r.get('emulator_cpu_secs', 0) * 1e6 / count:.1f} µs/event (own /proc: {ec['cpu_ns'] / 1000 / count:.1f})")


# ---------------------------------------------------------------------------
# Scenario: turn
# ---------------------------------------------------------------------------


def chat_done(view: dict, expect: str, typing: bool = True) -> bool:
    """The bot's reply is final (not streaming, holds the expected text) and,
    with the typing indicator, the reaction on the user's message is gone."""
    msgs = view.get("messages", [])
    bot = [m for m in msgs if m.get("sender") == "bot"]
    if not bot:
        return False
    final = any(not m.get("streaming") and expect in (m.get("text") or "") for m in bot)
    if not final:
        return False
    if typing:
        for m in msgs:
            if m.get("sender") != "bot" and m.get("reactions"):
                return False
    return True


def wait_chat_done(emu: Emulator, chat_id: str, expect: str, deadline: float) -> dict:
    version = None
    view = {}
    while time.monotonic() < deadline:
        view = emu.chat(chat_id, version, timeout_ms=3000)
        if chat_done(view, expect):
            return view
        version = view.get("version")
    raise TimeoutError(f"chat {chat_id}: no final reply containing {expect[:40]!r}; "
                       f"last view: {json.dumps(view.get('messages', [])[-1:])[:400]}")


def settle_stats(emu: Emulator, app_id: str, quiet_s: float = 0.3, timeout: float = 10) -> dict:
    """Stats once api_calls stop changing for quiet_s."""
    last = emu.app_stats(app_id)
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        time.sleep(quiet_s)
        cur = emu.app_stats(app_id)
        if cur.get("api_calls") == last.get("api_calls"):
            return cur
        last = cur
    return last


def calls_delta(before: dict, after: dict) -> dict:
    a, b = before.get("api_calls", {}), after.get("api_calls", {})
    return {k: b[k] - a.get(k, 0) for k in b if b[k] - a.get(k, 0)}


def metric_delta(before: dict, after: dict, prefix: str) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if k.startswith(prefix) and after[k] - before.get(k, 0)}


def rate_limit_hits(emu_before: dict, emu_after: dict, lg_before: dict, lg_after: dict) -> dict:
    """Rate-limit answers seen: larkgate's larkgate_api_errors_total by code,
    plus any emulator counter of response codes if it exposes one."""
    hits = {}
    for k, v in metric_delta(lg_before, lg_after, "larkgate_api_errors_total").items():
        m = re.search(r'code="([^"]+)"', k)
        code = m.group(1) if m else k
        if any(c in code for c in RATE_LIMIT_CODES):
            hits[f"larkgate:{code}"] = hits.get(f"larkgate:{code}", 0) + v
    for field in ("api_codes", "api_errors", "response_codes", "error_codes"):
        if field in emu_after:
            a, b = emu_before.get(field, {}), emu_after[field]
            for code, n in b.items():
                d = (n if isinstance(n, (int, float)) else 0) - (a.get(code, 0) if isinstance(a.get(code, 0), (int, float)) else 0)
                if d and any(c in str(code) for c in RATE_LIMIT_CODES):
                    hits[f"emulator:{code}"] = d
    return hits


def turn_round(emu: Emulator, lg: Larkgate, llm, conc: int, res: Results, subject: str, run: int,
               expect_fn) -> None:
    """C concurrent DMs from new users; waits for every final reply; records metrics."""
    app_id = lg.apps[0]["app_id"]
    case = f"c{conc}"
    users = [("ou_" + rand_hex(32), f"Bench user {i}") for i in range(conc)]
    if llm is not None:
        llm.reset()
    emu.timeline(True)
    stats0 = settle_stats(emu, app_id, 0.2)
    m0 = lg.metrics()
    cpu = CpuMeter(lg.pid, threads=True)
    ecpu = CpuMeter(emu.proc.pid)
    llm_cpu = CpuMeter(llm.proc.pid) if llm is not None else None
    with cf.ThreadPoolExecutor(max_workers=conc) as pool:
        # Threads started and lined up first, so the DMs leave together.
        gate = threading.Barrier(conc + 1)
        futs = [pool.submit(_send_at_gate, gate, emu, app_id, u, name, f"conv-{i}")
                for i, (u, name) in enumerate(users)]
        gate.wait()
        t_send = time.monotonic()
        sent = [f.result() for f in futs]
    chat_of = {i: s["chat_id"] for i, s in enumerate(sent)}
    deadline = time.monotonic() + 60 + conc * 0.5
    # Cheap wait while the turns run (one stats read per 20 ms, so the harness
    # takes little CPU from the 2 cores): every reply sent and every typing
    # reaction added (a reply slower than typingDelayMs) removed.
    try:
        wait_until(lambda: _turns_finished(calls_delta(stats0, emu.app_stats(app_id)), conc),
                   max(1.0, deadline - time.monotonic()), 0.02, f"{conc} finished turns")
    except TimeoutError:
        pass  # the per-chat check below says which chat is missing what
    t_done = time.monotonic() - t_send
    bot_created_ms = {}
    for i in range(conc):
        view = emu.chat(chat_of[i])
        if not chat_done(view, expect_fn(i)):
            view = wait_chat_done(emu, chat_of[i], expect_fn(i), deadline)
        created = [m.get("create_time_ms") for m in view.get("messages", [])
                   if m.get("sender") == "bot" and m.get("create_time_ms")]
        if created:
            bot_created_ms[chat_of[i]] = min(created)
    c = cpu.read()
    ec = ecpu.read()
    lc = llm_cpu.read() if llm_cpu is not None else None
    stats1 = settle_stats(emu, app_id, 0.3)
    m1 = lg.metrics()
    entries = emu.timeline_entries()
    emu.timeline(False)
    llm_tl = llm.timeline() if llm is not None else []

    calls = calls_delta(stats0, stats1)
    reaction_calls = sum(v for k, v in calls.items() if REACTION_ROUTE.search(k))
    other_calls = sum(v for k, v in calls.items() if not REACTION_ROUTE.search(k))

    # Per conversation, from the emulator's timeline and the LLM's.
    by_chat = {}
    labelled = False
    for e in entries:
        by_chat.setdefault(e["chat_id"], []).append(e)
        if any(k in e for k in ("what", "detail", "op", "route")):
            labelled = True
    llm_by_conv = {}
    for r in llm_tl:
        m = re.search(r"conv-(\d+)", r.get("conv", ""))
        if m:
            llm_by_conv.setdefault(int(m.group(1)), r)
    deliver_req, first_upd, ev_first_tok, ev_first_upd, ev_last, ev_first_bot = [], [], [], [], [], []
    ev_times = [e["t_ns"] for e in entries if e["kind"] == "event"]
    for i, chat_id in chat_of.items():
        es = sorted(by_chat.get(chat_id, []), key=lambda e: e["t_ns"])
        ev = next((e["t_ns"] for e in es if e["kind"] == "event"), None)
        if ev is None:
            continue
        ups = [e for e in es if e["kind"] == "update" and e["t_ns"] > ev and not _is_reaction(e)]
        if not labelled and chat_id in bot_created_ms:
            # Without labels, an update before the bot's first message (ms
            # clock) is the typing reaction: the reply cannot precede its message.
            floor = (bot_created_ms[chat_id] - 1) * 1_000_000
            bot_ups = [e for e in ups if e["t_ns"] >= floor]
        else:
            bot_ups = ups
        if ups:
            ev_first_upd.append((ups[0]["t_ns"] - ev) / 1e6)
            ev_last.append((ups[-1]["t_ns"] - ev) / 1e6)
        if bot_ups:
            ev_first_bot.append((bot_ups[0]["t_ns"] - ev) / 1e6)
        r = llm_by_conv.get(i)
        if r and r.get("t_first_ns"):
            deliver_req.append((r["t_req_ns"] - ev) / 1e6)
            after = [e for e in bot_ups if e["t_ns"] > r["t_first_ns"]]
            if after:
                first_upd.append((after[0]["t_ns"] - r["t_first_ns"]) / 1e6)
                ev_first_tok.append((after[0]["t_ns"] - ev) / 1e6)
    if llm is not None and not labelled:
        res.note("turn: the emulator's timeline does not say what an update was; the typing reaction (added "
                 "in the background, possibly after the first token) is told apart from the reply by the bot "
                 "message's create_time_ms (1 ms resolution)")

    res.record("turn", {"run": run, "subject": subject, "conc": conc, "api_calls": calls, "cpu": c,
                        "emulator_cpu": ec, "llm_server_cpu": lc,
                        "wall_to_all_done_s": t_done, "timeline_entries": len(entries),
                        "event_spread_ms": (max(ev_times) - min(ev_times)) / 1e6 if ev_times else None,
                        "labelled_updates": labelled,
                        "llm_requests": len(llm_tl),
                        "per_conv_ms": {"deliver_to_request": deliver_req, "first_token_to_update": first_upd,
                                        "event_to_first_update": ev_first_upd,
                                        "event_to_first_bot_update": ev_first_bot,
                                        "event_to_last_update": ev_last},
                        "larkgate_api_errors": metric_delta(m0, m1, "larkgate_api_errors_total")})
    res.add("turn", subject, case, "cpu_ms_per_turn", c["cpu_ns"] / 1e6 / conc, "ms/turn")
    res.add("turn", subject, case, "api_calls_per_turn", other_calls / conc, "calls/turn")
    res.add("turn", subject, case, "reaction_calls_per_turn", reaction_calls / conc, "calls/turn")
    for route, n in sorted(calls.items()):
        res.add("turn", subject, case, f"calls_per_turn[{route}]", n / conc, "calls/turn")
    res.add("turn", subject, case, "all_done_s", t_done, "s")
    for name, vals in (("deliver_to_request_ms", deliver_req), ("first_token_to_update_ms", first_upd),
                       ("event_to_first_token_visible_ms", ev_first_tok),
                       ("event_to_first_update_ms", ev_first_upd), ("event_to_first_reply_ms", ev_first_bot),
                       ("event_to_last_update_ms", ev_last)):
        if not vals:
            continue
        for q, qn in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
            res.add("turn", subject, case, f"{name}_{qn}", pct(vals, q), "ms")
    if llm is not None and len(deliver_req) < conc:
        res.note(f"turn {subject} {case}: only {len(deliver_req)}/{conc} conversations matched an LLM request")
    log(f"turn {subject} C={conc}: all done in {t_done:.2f} s, CPU {c['cpu_ns'] / 1e6 / conc:.2f} ms/turn, "
        f"{other_calls / conc:.1f} API calls/turn (+{reaction_calls / conc:.1f} reaction), "
        f"deliver->request p50 {pct(deliver_req, .5) or 0:.2f} ms, "
        f"first token->update p50 {pct(first_upd, .5) or 0:.2f} ms, "
        f"event->first update p50 {pct(ev_first_upd, .5) or 0:.2f} ms")


def _send_at_gate(gate: threading.Barrier, emu: Emulator, app_id: str, sender: str, name: str, text: str):
    gate.wait()
    return emu.send_dm(app_id, sender, name, text)


def _reaction_deletes(calls: dict) -> int:
    return sum(v for k, v in calls.items() if k.startswith("DELETE") and REACTION_ROUTE.search(k))


def _turns_finished(calls: dict, conc: int) -> bool:
    """At least `conc` replies sent, and as many typing reactions removed as
    added (larkgate adds one only when the agent works longer than
    typingDelayMs)."""
    replies = sum(v for k, v in calls.items()
                  if k.startswith("POST") and k.rstrip("/").endswith(("/reply", "/im/v1/messages")))
    adds = sum(v for k, v in calls.items() if k.startswith("POST") and REACTION_ROUTE.search(k))
    return replies >= conc and adds == _reaction_deletes(calls)


def _is_reaction(entry: dict) -> bool:
    label = " ".join(str(entry.get(k, "")) for k in ("what", "detail", "op", "route"))
    return "reaction" in label.lower()


def scenario_turn(emu: Emulator, res: Results, args, run: int) -> None:
    concs = [10, 100]
    # With the LLM.
    llm = lg = None
    try:
        llm = LLM(args.workdir, "--first-token-ms", "0", "--chars", "40", "--chunk", "20")
        app = emu.create_app("turn-llm")
        lg = Larkgate(emu, [app], agent="llm", llm_url=llm.url, label="larkgate-turn-llm")
        lg.wait_ready()
        emu.wait_connections(app["app_id"], 1, 30, lg.proc)
        shaper = LLMServer(0, 40, 20, 20)
        for conc in concs:
            turn_round(emu, lg, llm, conc, res, "larkgate-llm", run, lambda i: shaper.reply_text(f"conv-{i}"))
    except Exception as e:
        res.error("turn", f"llm: {e}")
    finally:
        if lg is not None:
            lg.stop()
        if llm is not None:
            llm.stop()
    # With the echo agent (no LLM).
    lg = None
    try:
        app = emu.create_app("turn-echo")
        lg = Larkgate(emu, [app], agent="echo", label="larkgate-turn-echo")
        lg.wait_ready()
        emu.wait_connections(app["app_id"], 1, 30, lg.proc)
        for conc in concs:
            turn_round(emu, lg, None, conc, res, "larkgate-echo", run, lambda i: f"conv-{i}")
    except Exception as e:
        res.error("turn", f"echo: {e}")
    finally:
        if lg is not None:
            lg.stop()


# ---------------------------------------------------------------------------
# Scenario: idle
# ---------------------------------------------------------------------------


def scenario_idle(emu: Emulator, res: Results, args, run: int) -> None:
    idle_s = args.idle_secs
    for n_acct in (1, 10):
        subject = f"larkgate-{n_acct}acct"
        lg = None
        try:
            apps = [emu.create_app(f"idle{n_acct}-{i}") for i in range(n_acct)]
            lg = Larkgate(emu, apps, agent="echo", label=f"larkgate-idle{n_acct}")
            ready = lg.wait_ready(30, 0.002)
            for a in apps:
                emu.wait_connections(a["app_id"], 1, 10, lg.proc)
            time.sleep(idle_s)
            st = lg.proc.status()
            cpu_idle = CpuMeter(lg.pid)
            time.sleep(1.0)
            idle_cpu = cpu_idle.read()
            res.record("idle", {"run": run, "subject": subject, "ready_s": ready, "status": st,
                                "idle_cpu_1s": idle_cpu})
            res.add("idle", subject, "", "startup_ms", ready * 1000, "ms")
            _idle_status(res, subject, st)
            res.add("idle", subject, "", "idle_cpu_pct", 100 * idle_cpu["cpu_ns"] / 1e9 / idle_cpu["wall_s"], "% of a core")
            log(f"idle {subject}: ready in {ready * 1000:.1f} ms, RSS {st['rss_bytes'] / 1e6:.1f} MB, "
                f"{st['threads']} threads")
        except Exception as e:
            res.error("idle", f"{subject}: {e}")
        finally:
            if lg is not None:
                lg.stop()
    for kind in [k for k in args.clients if k != "larkgate"]:
        client = None
        try:
            client = Client(kind, emu, args.python, args.workdir)
            time.sleep(idle_s)
            st = client.proc.status()
            res.record("idle", {"run": run, "subject": kind, "connect_s": client.connect_s, "status": st})
            res.add("idle", kind, "", "connect_ms", client.connect_s * 1000, "ms")
            _idle_status(res, kind, st)
            log(f"idle {kind}: connected in {client.connect_s * 1000:.0f} ms, RSS {st['rss_bytes'] / 1e6:.1f} MB, "
                f"{st['threads']} threads")
        except Exception as e:
            res.error("idle", f"{kind}: {e}")
        finally:
            if client is not None:
                client.stop()


def _idle_status(res: Results, subject: str, st: dict) -> None:
    res.add("idle", subject, "", "rss_mb", st["rss_bytes"] / 1e6 if st["rss_bytes"] else None, "MB")
    res.add("idle", subject, "", "peak_rss_mb", st["hwm_bytes"] / 1e6 if st["hwm_bytes"] else None, "MB")
    res.add("idle", subject, "", "threads", st["threads"], "threads")


def binary_sizes(res: Results) -> None:
    for name, path in (("larkgate", LARKGATE_BIN), ("lark-emulator", EMULATOR_BIN), ("bench_ingest", INGEST_BIN)):
        if not os.path.exists(path):
            continue
        res.add("binary", name, "", "size_mb", os.path.getsize(path) / 1e6, "MB")
        strip = shutil.which("strip")
        if strip:
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "stripped")
                r = subprocess.run([strip, "-o", out, path], capture_output=True)
                if r.returncode == 0:
                    res.add("binary", name, "", "stripped_mb", os.path.getsize(out) / 1e6, "MB")


# ---------------------------------------------------------------------------
# Scenario: streaming
# ---------------------------------------------------------------------------


def scenario_streaming(emu: Emulator, res: Results, args, run: int) -> None:
    llm = lg = None
    subject, case = "larkgate-llm", "2000chars"
    try:
        llm = LLM(args.workdir, "--first-token-ms", "0", "--chars", "2000", "--chunk", "10", "--interval-ms", "15")
        app = emu.create_app("streaming")
        lg = Larkgate(emu, [app], agent="llm", llm_url=llm.url, label="larkgate-streaming")
        lg.wait_ready()
        emu.wait_connections(app["app_id"], 1, 30, lg.proc)
        app_id = app["app_id"]
        llm.reset()
        emu.timeline(True)
        s0 = settle_stats(emu, app_id, 0.2)
        m0 = lg.metrics()
        cpu = CpuMeter(lg.pid)
        sent = emu.send_dm(app_id, "ou_" + rand_hex(32), "Bench streamer", "conv-0")
        expect = LLMServer(0, 2000, 10, 15).reply_text("conv-0")
        view = wait_chat_done(emu, sent["chat_id"], expect, time.monotonic() + 60)
        s1 = settle_stats(emu, app_id, 0.3)
        c = cpu.read()
        m1 = lg.metrics()
        entries = [e for e in emu.timeline_entries() if e["chat_id"] == sent["chat_id"]]
        emu.timeline(False)
        tl = llm.timeline()
        calls = calls_delta(s0, s1)
        hits = rate_limit_hits(s0, s1, m0, m1)
        errors = metric_delta(m0, m1, "larkgate_api_errors_total")
        rec = tl[0] if tl else {}
        ev = next((e["t_ns"] for e in entries if e["kind"] == "event"), None)
        ups = sorted(e["t_ns"] for e in entries if e["kind"] == "update" and ev and e["t_ns"] > ev
                     and not _is_reaction(e))
        card_ups = [t for t in ups if rec.get("t_first_ns") and t > rec["t_first_ns"]]
        span_s = (card_ups[-1] - card_ups[0]) / 1e9 if len(card_ups) > 1 else None
        first_card_ms = (card_ups[0] - rec["t_first_ns"]) / 1e6 if card_ups else None
        last_card_ms = (card_ups[-1] - rec["t_done_ns"]) / 1e6 if card_ups and rec.get("t_done_ns") else None
        max_1s = 0
        j = 0
        for i, t in enumerate(card_ups):
            while card_ups[j] < t - 1_000_000_000:
                j += 1
            max_1s = max(max_1s, i - j + 1)
        content_calls = sum(v for k, v in calls.items() if "/content" in k or "PATCH" in k or "PUT" in k)
        total = sum(v for k, v in calls.items() if not REACTION_ROUTE.search(k))
        bot = [m for m in view.get("messages", []) if m.get("sender") == "bot"]
        complete = any(expect in (m.get("text") or "") for m in bot)
        stream_s = (rec["t_done_ns"] - rec["t_first_ns"]) / 1e9 if rec.get("t_done_ns") else None
        res.record("streaming", {"run": run, "api_calls": calls, "rate_limit_hits": hits, "api_errors": errors,
                                 "updates": len(ups), "card_updates_after_first_token": len(card_ups),
                                 "card_span_s": span_s, "llm_stream_s": stream_s, "cpu": c,
                                 "text_complete": complete, "bot_messages": len(bot)})
        res.add("streaming", subject, case, "api_calls_per_reply", total, "calls")
        res.add("streaming", subject, case, "reaction_calls_per_reply", sum(calls.values()) - total, "calls")
        res.add("streaming", subject, case, "content_updates_per_reply", content_calls, "calls")
        for route, n in sorted(calls.items()):
            res.add("streaming", subject, case, f"calls[{route}]", n, "calls")
        res.add("streaming", subject, case, "llm_stream_s", stream_s, "s")
        res.add("streaming", subject, case, "card_span_s", span_s, "s")
        res.add("streaming", subject, case, "first_token_to_first_update_ms", first_card_ms, "ms")
        res.add("streaming", subject, case, "last_token_to_last_update_ms", last_card_ms, "ms")
        res.add("streaming", subject, case, "card_updates_per_sec",
                (len(card_ups) - 1) / span_s if span_s else None, "updates/s")
        res.add("streaming", subject, case, "max_updates_in_1s", max_1s, "updates")
        res.add("streaming", subject, case, "rate_limit_errors", sum(hits.values()), "errors")
        res.add("streaming", subject, case, "api_errors", sum(errors.values()), "errors")
        res.add("streaming", subject, case, "cpu_ms_per_reply", c["cpu_ns"] / 1e6, "ms")
        res.add("streaming", subject, case, "text_complete", 1 if complete else 0, "bool", "higher")
        if hits:
            res.note(f"streaming: rate-limit answers during one reply: {hits}")
        log(f"streaming: {total} API calls ({content_calls} content updates) for a {stream_s or 0:.2f} s stream, "
            f"card updates {((len(card_ups) - 1) / span_s) if span_s else 0:.1f}/s (max {max_1s} in 1 s), "
            f"rate-limit errors {sum(hits.values())}, text complete {complete}")
    except Exception as e:
        res.error("streaming", str(e))
    finally:
        if lg is not None:
            lg.stop()
        if llm is not None:
            llm.stop()


# ---------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------


def cmd_out(argv, cwd=None) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "os": platform.platform(), "mem_total_bytes": mem,
            "loadavg_at_start": list(os.getloadavg())}


def versions(python: str) -> dict:
    sdk_node = None
    try:
        with open(os.path.join(NODE_DIR, "node_modules", "@larksuiteoapi", "node-sdk", "package.json")) as f:
            sdk_node = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    py_ver = cmd_out([python, "-c", "import sys, importlib.metadata as m; "
                                    "print(sys.version.split()[0], m.version('lark-oapi'))"]).split()
    dirty = cmd_out(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT)
    return {
        "git_commit": cmd_out(["git", "rev-parse", "HEAD"], cwd=ROOT),
        "git_dirty": bool(dirty),
        "larkgate": cmd_out([LARKGATE_BIN, "--version"]),
        "node": cmd_out(["node", "--version"]),
        "node_sdk": sdk_node,
        "python_sdk_python": py_ver[0] if py_ver else None,
        "python_sdk": py_ver[1] if len(py_ver) > 1 else None,
        "harness_python": platform.python_version(),
        "rustc": cmd_out(["rustc", "--version"]),
    }


def find_python(arg) -> str:
    if arg:
        return arg
    if os.environ.get("LARK_SDK_PYTHON"):
        return os.environ["LARK_SDK_PYTHON"]
    out = cmd_out(["bash", os.path.join(ROOT, "tools", "sdk-venv.sh")])
    path = out.splitlines()[-1].strip() if out else ""
    if not path or not os.path.exists(path):
        raise SystemExit("bench: no Python with lark-oapi; run `bash tools/sdk-venv.sh` or pass --python")
    return path


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

SCENARIOS = {"ingest": scenario_ingest, "turn": scenario_turn, "idle": scenario_idle,
             "streaming": scenario_streaming}
ALL_CLIENTS = ["lark-client", "larkgate", "node-sdk", "python-sdk"]


def main() -> int:
    p = argparse.ArgumentParser(description="larkgate vs the official SDKs on lark-emulator",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="repetitions of each scenario (default 5)")
    p.add_argument("--quick", action="store_true", help="1 run with small event counts")
    p.add_argument("--scenarios", default="ingest,turn,idle,streaming")
    p.add_argument("--clients", default=",".join(ALL_CLIENTS), help="clients for ingest and idle")
    p.add_argument("--python", help="Python with lark-oapi (default: tools/sdk-venv.sh)")
    p.add_argument("--idle-secs", type=float, default=5.0)
    p.add_argument("--push-timeout", type=int, default=120, help="timeout_secs of each push")
    p.add_argument("--drain-secs", type=float, default=None,
                   help="after a push, wait at most this long for refused events' redeliveries to be acked "
                        "(default 30, --quick 5)")
    p.add_argument("--out", help="result file (default bench/results/<UTC timestamp>.json)")
    p.add_argument("--no-docs-copy", action="store_true", help="do not copy to docs/bench/results.json")
    args = p.parse_args()
    if args.quick:
        args.runs = 1
    if args.drain_secs is None:
        args.drain_secs = 5.0 if args.quick else 30.0
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    for c in args.clients:
        if c not in ALL_CLIENTS:
            p.error(f"unknown client {c}")
    needed = [EMULATOR_BIN]
    if "larkgate" in args.clients or set(args.scenarios) & {"turn", "idle", "streaming"}:
        needed.append(LARKGATE_BIN)
    if "lark-client" in args.clients:
        needed.append(INGEST_BIN)
    missing = [b for b in needed if not os.path.exists(b)]
    if missing:
        print("bench: missing release binaries: " + ", ".join(missing) + "\nbuild them with:\n"
              "  cargo build --release -p lark-emulator -p larkgate && "
              "cargo build --release -p lark-client --example bench_ingest", file=sys.stderr)
        return 2
    if "node-sdk" in args.clients and not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        print("bench: bench/node/node_modules is missing: (cd bench/node && npm ci)", file=sys.stderr)
        return 2
    args.python = find_python(args.python) if "python-sdk" in args.clients else (args.python or "")

    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.workdir = tempfile.mkdtemp(prefix=f"larkgate-bench-{stamp}-")
    res = Results()
    info = {"machine": machine_info(), "versions": versions(args.python) if args.python else versions(sys.executable)}
    log(f"machine: {info['machine']['cpu_model']} x{info['machine']['nproc']}, logs in {args.workdir}")

    emu = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        emu = Emulator(args.workdir)
        log(f"lark-emulator at {emu.url} (default app {emu.default_app['app_id']})")
        try:
            emu.post("/_emulator/bench/timeline", {"on": False})
        except RuntimeError as e:
            log(f"warning: the emulator has no /_emulator/bench endpoints ({e}); ingest/turn/streaming will fail")
        binary_sizes(res)
        for run in range(1, args.runs + 1):
            for s in args.scenarios:
                log(f"--- run {run}/{args.runs}: {s}")
                SCENARIOS[s](emu, res, args, run)
        emu_status = emu.proc.status()
        info["emulator_final_status"] = emu_status
    except KeyboardInterrupt:
        res.error("harness", "interrupted")
    finally:
        if emu is not None:
            emu.proc.stop()
        Proc.stop_all()

    finished = dt.datetime.now(dt.timezone.utc)
    out = {
        "schema": SCHEMA_VERSION,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        **info,
        "config": {
            "runs": args.runs, "quick": args.quick, "scenarios": args.scenarios, "clients": args.clients,
            "ingest_cases": [dict(zip(("case", "rate", "count", "python_count"), c))
                             for c in (RATE_CASES_QUICK if args.quick else RATE_CASES_FULL)],
            "turn_concurrency": [10, 100], "idle_secs": args.idle_secs,
            "llm_turn": {"first_token_ms": 0, "chars": 40, "chunk": 20, "interval_ms": 20},
            "llm_streaming": {"first_token_ms": 0, "chars": 2000, "chunk": 10, "interval_ms": 15},
            "emulator_args": ["--no-chat-rate-limit"],
        },
        "metrics": sorted(res.finalized(), key=lambda e: e["key"]),
        "errors": res.errors,
        "notes": res.notes,
        "raw": res.raw,
    }
    path = args.out or os.path.join(BENCH, "results", f"{stamp}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    log(f"wrote {path}")
    if not args.no_docs_copy:
        docs = os.path.join(ROOT, "docs", "bench", "results.json")
        os.makedirs(os.path.dirname(docs), exist_ok=True)
        shutil.copyfile(path, docs)
        log(f"copied to {docs}")
    if res.errors:
        log(f"{len(res.errors)} error(s): " + "; ".join(e["error"][:120] for e in res.errors))
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
