#!/usr/bin/env python3
"""The whole test suite, test binaries side by side: what `./bootstrap.sh test` runs.

`cargo test` runs one test binary after the other, and most of the suite's time is spent
waiting (for a roll to age, a broker to come back, Spark to start), not computing. This builds
every test binary once (`cargo test --release --no-run`), then runs JOBS of them at a time.
Tests of different binaries meet on the one lab: each lab test holds a shared turn for its run
and a test that kills, freezes or restarts a service has the lab alone (tests/common/turn.rs),
so a fault never lands in a test that is not expecting it. The library's unit tests, which
take no turns of their own, run under a shared turn the runner holds (NEEDS_SHARED_TURN).

Each binary's output goes to target/test-logs/<binary>.log and is printed whole when the binary
ends; a line every five minutes says which are still running. The end is a table of every
binary's time and result, slowest first, and the exit status is 1 if any failed.

    python3 tests/run_suite.py [-- ARGS…]    ARGS go to every test binary (a name filter, say)

Settings (environment): LANDFALL_TEST_JOBS, binaries at once (default 2).
"""

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "target" / "test-logs"
TIMES = ROOT / "target" / "test-times.json"

# Seconds each binary took in the last CI run (2 cores; fault_matrix and compaction raised for
# the tests added since), for the order on a fresh clone: the longest start first, so the short
# ones fill in beside them. Measured times in TIMES win.
LAST_KNOWN = {
    "fault_matrix": 950,
    "liveness": 602,
    "rabbitmq_e2e": 473,
    "operability": 225,
    "hive_registration": 194,
    "faults": 179,
    "compaction": 260,
    "kafka_e2e": 156,
    "completion": 83,
    "landfall (lib)": 70,
    "validate_cli": 53,
    "status_page": 37,
    "lab_smoke": 17,
}


def build():
    """Builds every test target; returns [(label, executable)]."""
    cmd = ["cargo", "test", "--locked", "--release", "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"run_suite: `{' '.join(cmd)}` failed ({proc.returncode}); the errors are above")
    found = []
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable") or not msg["profile"]["test"]:
            continue
        target = msg["target"]
        kind = target["kind"][0]
        label = target["name"] if kind == "test" else f"{target['name']} ({kind})"
        found.append((label, msg["executable"]))
    if not found:
        sys.exit("run_suite: cargo built no test binary")
    return found


def expected_seconds(label, measured):
    return measured.get(label, LAST_KNOWN.get(label, 60))


# Binaries whose tests use the lab without taking turns of their own (tests/common/turn.rs
# belongs to the integration tests): the library's unit tests reach the lab HDFS (the store
# conformance suite, a Parquet round trip). The runner holds a shared turn while they run, so
# a test that has the lab alone (a NameNode killed) never runs beside them.
NEEDS_SHARED_TURN = {"landfall (lib)"}


def shared_turn():
    """A shared turn on the lab, taken as tests/common/turn.rs takes one (through the gate,
    so a test waiting for the lab alone goes first); closing the returned file releases it."""
    lab = Path(os.environ.get("LANDFALL_LAB") or ROOT / ".lab")
    lab.mkdir(parents=True, exist_ok=True)
    with open(lab / "tests.gate", "a") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)
        lock = open(lab / "tests.lock", "a")
        fcntl.flock(lock, fcntl.LOCK_SH)
    return lock


class Suite:
    def __init__(self, binaries, args, jobs):
        measured = json.loads(TIMES.read_text()) if TIMES.exists() else {}
        self.queue = sorted(binaries, key=lambda b: -expected_seconds(b[0], measured))
        self.args = args
        self.jobs = jobs
        self.lock = threading.Lock()
        self.running = {}
        self.results = []

    def run_one(self, label, exe):
        log_path = LOGS / (label.replace(" ", "_").replace("(", "").replace(")", "") + ".log")
        started = time.monotonic()
        turn = shared_turn() if label in NEEDS_SHARED_TURN else None
        try:
            with open(log_path, "w") as log:
                env = dict(os.environ, CARGO_MANIFEST_DIR=str(ROOT))
                run = subprocess.run([exe, *self.args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
                code = run.returncode
        finally:
            if turn:
                turn.close()
        took = time.monotonic() - started
        with self.lock:
            del self.running[label]
            self.results.append((label, code, took))
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"\n== {label}: {status} in {took:.0f} s ({log_path.relative_to(ROOT)})", flush=True)
            sys.stdout.write(log_path.read_text(errors="replace"))
            sys.stdout.flush()

    def worker(self):
        while True:
            with self.lock:
                if not self.queue:
                    return
                label, exe = self.queue.pop(0)
                self.running[label] = time.monotonic()
            self.run_one(label, exe)

    def heartbeat(self, done):
        while not done.wait(300):
            with self.lock:
                now = time.monotonic()
                names = ", ".join(f"{k} ({now - v:.0f} s)" for k, v in self.running.items())
                print(f"== still running: {names}; {len(self.queue)} waiting", flush=True)

    def run(self):
        done = threading.Event()
        threading.Thread(target=self.heartbeat, args=(done,), daemon=True).start()
        workers = [threading.Thread(target=self.worker) for _ in range(self.jobs)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done.set()


def main():
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    jobs = int(os.environ.get("LANDFALL_TEST_JOBS", "2"))
    started = time.monotonic()
    binaries = build()
    LOGS.mkdir(parents=True, exist_ok=True)
    print(f"== {len(binaries)} test binaries, {jobs} at a time", flush=True)
    suite = Suite(binaries, args, jobs)
    suite.run()

    # Doc tests are not a binary cargo builds ahead; rustdoc compiles and runs them here.
    doc = subprocess.run(["cargo", "test", "--locked", "--release", "--doc", "--", *args], cwd=ROOT)
    suite.results.append(("doc-tests", doc.returncode, 0.0))

    if not args:  # a filtered run's times say nothing about the next whole run's order
        measured = {label: round(took) for label, code, took in suite.results if label != "doc-tests"}
        TIMES.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
    print("\n== test binaries, slowest first")
    for label, code, took in sorted(suite.results, key=lambda r: -r[2]):
        print(f"{took:7.0f} s  {'ok    ' if code == 0 else 'FAILED'}  {label}")
    failed = [label for label, code, _ in suite.results if code != 0]
    print(f"== suite finished in {time.monotonic() - started:.0f} s (build included)")
    if failed:
        print(f"== FAILED: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
