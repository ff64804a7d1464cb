#!/usr/bin/env python3
"""Landfall's throughput/CPU/memory benchmark (issue #5): one command, every number measured.

    python3 bench/run.py [--events N] [--skip spark,flink,bare-amqp,...] [--keep]

Generates the events (a 4-partition topic, two identical RabbitMQ quorum queues, a 4-partition
topic with 200 `shard` values), runs each contender alone while measuring it, prints a table,
writes bench/results/<date>.md and .json and removes what it created (topics, queues, HDFS
dirs). Needs the lab (./bootstrap.sh up) and target/release/landfall. Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = ["raw-drain", "landfall-hdfs", "landfall-local", "spark", "flink",
              "bare-amqp", "landfall-rabbitmq", "landfall-200"]
KAFKA4 = {"raw-drain", "landfall-hdfs", "landfall-local", "spark", "flink"}
AMQP = {"bare-amqp", "landfall-rabbitmq"}
BROKERS = "127.0.0.1:9092"
AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/%2f"
HDFS_URL = "hdfs://127.0.0.1:9000"
MAVEN = "https://repo1.maven.org/maven2"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# ---- measuring one process tree ---------------------------------------------------------------

def become_subreaper() -> None:
    """Orphans of a measured tree (e.g. the Spark launcher JVM that bash never waits for) are
    re-parented to us, so their CPU time reaches us through wait4 instead of being lost."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def proc_stat(pid: int) -> tuple[int, int, float, int] | None:
    """(ppid, starttime, own cpu seconds, rss bytes) from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid=4, utime=14, stime=15, starttime=22, rss=24.
    return (int(fields[1]), int(fields[19]),
            (int(fields[11]) + int(fields[12])) / CLK, int(fields[21]) * PAGE)


class TreeSampler(threading.Thread):
    """Every 100 ms: the RSS sum of the process tree (peak kept) and each member's CPU time.
    Members stay tracked after being re-parented, so daemons that detach are still counted."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stop_evt = threading.Event()
        self.peak_rss = 0
        self.cpu: dict[tuple[int, int], float] = {}
        self.members: set[tuple[int, int]] = set()

    def run(self) -> None:
        while not self.stop_evt.is_set():
            self.sample()
            self.stop_evt.wait(0.1)

    def sample(self) -> None:
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = proc_stat(int(name))
                if st:
                    stats[int(name)] = st
        pids = {p for (p, _s) in self.members if p in stats and stats[p][1] == _s}
        if self.root in stats:
            pids.add(self.root)
        grew = True
        while grew:  # add descendants of known members
            new = {p for p, st in stats.items() if st[0] in pids and p not in pids}
            pids |= new
            grew = bool(new)
        rss = 0
        for p in pids:
            _ppid, start, cpu, r = stats[p]
            key = (p, start)
            self.members.add(key)
            self.cpu[key] = max(self.cpu.get(key, 0.0), cpu)
            rss += r
        self.peak_rss = max(self.peak_rss, rss)


def measure(cmd: list[str], log_dir: Path, label: str, timeout: float,
            env: dict | None = None, cwd: str | None = None) -> dict:
    """Runs cmd to completion; wall, CPU (rusage of everything reaped) and peak RSS."""
    out_path, err_path = log_dir / f"{label}.out", log_dir / f"{label}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killer = threading.Timer(timeout, lambda: _killpg(proc.pid))
        killer.start()
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop_evt.set()
        sampler.join()
        cpu_user, cpu_sys, maxrss_kb = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
        # Reap orphans of the tree (re-parented to us as subreaper); stragglers get 5 s.
        deadline = time.monotonic() + 5
        while True:
            try:
                pid, _st, oru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if time.monotonic() > deadline + 2:
                    break  # a detached straggler in another session: leave it
                if time.monotonic() > deadline:
                    _killpg(proc.pid)
                time.sleep(0.05)
                continue
            cpu_user += oru.ru_utime
            cpu_sys += oru.ru_stime
            maxrss_kb = max(maxrss_kb, oru.ru_maxrss)
    cpu_wait4 = cpu_user + cpu_sys
    cpu_proc = sum(sampler.cpu.values())
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "cpu_user_s": cpu_user,
        "cpu_sys_s": cpu_sys,
        "cpu_wait4_s": cpu_wait4,
        "cpu_proc_s": cpu_proc,
        # /proc sampling misses at most the last 100 ms of each process; rusage misses
        # anything never reaped. Take the larger.
        "cpu_s": max(cpu_wait4, cpu_proc),
        "maxrss_mib": maxrss_kb / 1024,
        "tree_rss_mib": sampler.peak_rss / 2**20,
        "peak_rss_mib": max(maxrss_kb / 1024, sampler.peak_rss / 2**20),
        "processes": len(sampler.members),
        "stdout": out_path.read_text(errors="replace"),
        "stderr": err_path.read_text(errors="replace"),
    }


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


# ---- HDFS via WebHDFS -------------------------------------------------------------------------

class WebHdfs:
    def __init__(self, base: str, user: str):
        self.base, self.user = base.rstrip("/"), user

    def _url(self, path: str, op: str, **params) -> str:
        q = urllib.parse.urlencode({"op": op, "user.name": self.user, **params})
        return f"{self.base}/webhdfs/v1{urllib.parse.quote(path)}?{q}"

    def list_files(self, path: str) -> list[tuple[str, int]]:
        """Every file under path, recursively: (full path, length)."""
        try:
            with urllib.request.urlopen(self._url(path, "LISTSTATUS"), timeout=60) as r:
                entries = json.load(r)["FileStatuses"]["FileStatus"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return []
            raise
        files = []
        for e in entries:
            child = f"{path.rstrip('/')}/{e['pathSuffix']}" if e["pathSuffix"] else path
            if e["type"] == "DIRECTORY":
                files += self.list_files(child)
            else:
                files.append((child, e["length"]))
        return files

    def delete(self, path: str) -> None:
        req = urllib.request.Request(self._url(path, "DELETE", recursive="true"), method="DELETE")
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()


def data_files(files: list[tuple[str, int]], root: str, suffix: str = ".parquet") -> tuple[list[int], int]:
    """Sizes of the *.parquet files Spark would read (none under a `_`/`.`-prefixed name) and
    the number of distinct partition dirs holding them. Flink's filesystem sink names its files
    `part-<uuid>-task-<n>-file-<m>` with no extension: suffix "" counts every visible file."""
    sizes, dirs = [], set()
    for path, size in files:
        rel = path[len(root):].strip("/").split("/")
        if rel[-1].endswith(suffix) and not any(p.startswith(("_", ".")) for p in rel):
            sizes.append(size)
            dirs.add("/".join(rel[:-1]))
    return sizes, len(dirs)


def size_distribution(sizes: list[int]) -> dict | None:
    """Nearest-rank percentiles of file sizes in bytes (Spark reads best near 128 MiB), and
    how many files are under 8 MiB (the small-file count a compaction would merge)."""
    if not sizes:
        return None
    ordered = sorted(sizes)

    def rank(q: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
    return {"min": ordered[0], "p10": rank(0.10), "p50": rank(0.50), "p90": rank(0.90), "max": ordered[-1],
            "under_8mib": sum(1 for x in ordered if x < 8 << 20)}


def local_files(root: Path) -> list[tuple[str, int]]:
    return [(str(p), p.stat().st_size) for p in root.rglob("*") if p.is_file()]


# ---- helpers ----------------------------------------------------------------------------------

def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Runs an unmeasured step; on failure exits with its stderr."""
    p = subprocess.run(cmd, text=True, capture_output=True, env={**os.environ, "RUST_BACKTRACE": "0"}, **kw)
    if p.returncode != 0:
        raise SystemExit(f"failed (rc {p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
    return p


def result_line(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {}


def tail(text: str, n: int = 6) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])[-600:]


def build_tools(cargo_toml: Path, force: bool) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", cargo_toml.parent / "target"))
    bins = target / "release"
    if force or not all((bins / b).exists() for b in ("bench-gen", "raw-drain", "bare-amqp")):
        say(f"building bench tools (release) into {target}")
        subprocess.run(["cargo", "build", "--release", "--manifest-path", str(cargo_toml)],
                       check=True)
    return bins


def lab_python(lab: Path) -> str:
    p = lab / "bin" / "lab-python"
    return str(p) if p.exists() else sys.executable


def pyspark_info(lab: Path) -> tuple[str, Path]:
    out = run([lab_python(lab), "-c",
               "import os, pyspark; print(pyspark.__version__); print(os.path.dirname(pyspark.__file__))"])
    version, home = out.stdout.split()[:2]
    return version, Path(home)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30):
            return True
    except (urllib.error.URLError, OSError):
        return False


def spark_kafka_version(pyspark_version: str) -> tuple[str, str]:
    """The connector version to use and why: pyspark's own when Maven Central has it, else the
    newest release of the same major version that is not newer than pyspark."""
    art = f"{MAVEN}/org/apache/spark/spark-sql-kafka-0-10_2.13"
    if http_ok(f"{art}/{pyspark_version}/spark-sql-kafka-0-10_2.13-{pyspark_version}.pom"):
        return pyspark_version, "matches pyspark"
    with urllib.request.urlopen(f"{art}/maven-metadata.xml", timeout=60) as r:
        versions = re.findall(r"<version>([0-9.]+)</version>", r.read().decode())
    key = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    same_major = [v for v in versions
                  if v.split(".")[0] == pyspark_version.split(".")[0] and key(v) <= key(pyspark_version)]
    if not same_major:
        raise SystemExit(f"no spark-sql-kafka-0-10_2.13 for Spark {pyspark_version} on Maven Central")
    best = max(same_major, key=key)
    return best, f"{pyspark_version} is not on Maven Central; newest same-major release used"


def resolve_spark_kafka(version: str, spark_jars: Path, cache: Path) -> list[str]:
    """spark-sql-kafka and its runtime deps (minus what pyspark already ships) via Maven."""
    out = cache / f"spark-sql-kafka-{version}"
    jars = out / "jars"
    if not jars.is_dir() or not any(jars.glob("spark-sql-kafka*.jar")):
        out.mkdir(parents=True, exist_ok=True)
        (out / "pom.xml").write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>landfall.bench</groupId><artifactId>spark-kafka-jars</artifactId><version>1</version>
  <dependencies><dependency><groupId>org.apache.spark</groupId>
    <artifactId>spark-sql-kafka-0-10_2.13</artifactId><version>{version}</version>
  </dependency></dependencies>
</project>
""")
        run(["mvn", "-q", "-B", "-f", str(out / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={jars}"])
    strip = lambda n: re.sub(r"-[0-9][^-]*\.jar$", "", n)  # noqa: E731
    shipped = {strip(p.name) for p in spark_jars.glob("*.jar")}
    return sorted(str(p) for p in jars.glob("*.jar") if strip(p.name) not in shipped)


def prepare_flink(repo: Path, lab: Path) -> dict:
    """Installs the Flink SQL peer through `bootstrap.sh flink` (a no-op once installed; the
    install is not part of the tests) and returns its versions and jars."""
    t = time.monotonic()
    p = subprocess.run([str(repo / "bootstrap.sh"), "flink"], text=True, capture_output=True,
                       env={**os.environ, "LANDFALL_LAB": str(lab)})
    if p.returncode != 0:
        raise SystemExit(f"./bootstrap.sh flink failed (rc {p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
    install_s = time.monotonic() - t
    if p.stdout.strip():
        print(p.stdout.strip(), flush=True)
    out = run([str(lab / "bin" / "flink-python"), "-c", "import pyflink.version as v; print(v.__version__)"])
    # Flink loads org.slf4j parent-first from its own lib dir; a second slf4j-api adds nothing.
    jars = sorted(str(j) for j in (lab / "flink" / "lib").glob("*.jar") if not j.name.startswith("slf4j-api"))
    hadoop = sorted(j.name for j in (lab / "flink" / "hadoop").glob("hadoop-client-*.jar"))
    return {"pyflink": out.stdout.strip(), "install_s": round(install_s, 1),
            "jars": jars, "hadoop_client": hadoop, "bootstrap_output": p.stdout.strip()}


def machine_info() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model,
            "ram_gib": round(mem_kb / 2**20, 1), "kernel": platform.release()}


def versions(landfall: Path, lab: Path, pyspark_version: str | None) -> dict:
    v = {}
    try:
        v["landfall"] = run([str(landfall), "--version"]).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as e:
        v["landfall"] = f"unknown ({e})"
    v["pyspark"] = pyspark_version or "not used"
    kafka = sorted((lab / "kafka" / "lib").glob("kafka-clients-*.jar"))
    v["kafka"] = kafka[-1].name[len("kafka-clients-"):-4] if kafka else "unknown"
    try:
        v["rabbitmq"] = run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"]).stdout
    except (subprocess.CalledProcessError, OSError):
        v["rabbitmq"] = "unknown"
    return v


# ---- the benchmark ----------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--skip", default="", help=f"comma-separated, of: {', '.join(CONTENDERS)}")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="Landfall checkout (default: ..)")
    ap.add_argument("--landfall", type=Path, help="binary (default: REPO/target/release/landfall)")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--webhdfs", default="http://127.0.0.1:9870")
    ap.add_argument("--hdfs-user", default=os.environ.get("USER", "root"))
    ap.add_argument("--rebuild-tools", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep topics, queues and HDFS output")
    ap.add_argument("--timeout", type=float, help="seconds per contender before it is killed "
                    "and reported failed (default 300 + events/1000)")
    ap.add_argument("--flink-partition-by", default="dt,country",
                    help="the Flink SQL sink's PARTITIONED BY (default dt,country like the other "
                    "contenders; dt,hour is the layout issue 16 names)")
    ap.add_argument("--label", help="results file name suffix: RESULTS/<date>-<label>.md")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(CONTENDERS)
    if unknown:
        ap.error(f"unknown contender(s) {sorted(unknown)}; known: {CONTENDERS}")
    todo = [c for c in CONTENDERS if c not in skip]
    repo = args.repo.resolve()
    lab = Path(os.environ.get("LANDFALL_LAB", repo / ".lab"))
    landfall = (args.landfall or repo / "target" / "release" / "landfall").resolve()
    if not landfall.exists() and any(c.startswith("landfall") for c in todo):
        raise SystemExit(f"{landfall} not found: build it with `cargo build --release`")
    become_subreaper()

    # -- preparation (not measured) --
    bins = build_tools(HERE / "tools" / "Cargo.toml", args.rebuild_tools)
    gen, drain, bare = (str(bins / b) for b in ("bench-gen", "raw-drain", "bare-amqp"))
    n = args.events
    run_id = time.strftime("%Y%m%d%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    hdfs_root = f"/bench/{run_id}"
    names = {"t4": f"bench-{run_id}-t4", "t200": f"bench-{run_id}-t200",
             "qbare": f"bench-q-bare-{run_id}", "qland": f"bench-q-landfall-{run_id}"}
    webhdfs = WebHdfs(args.webhdfs, args.hdfs_user)
    report: dict = {"date": dt.date.today().isoformat(), "run_id": run_id, "events": n,
                    "seed": args.seed, "machine": machine_info(), "contenders": {}, "prep": {}}
    spark_jars: list[str] = []
    pyspark_version = None
    if "spark" in todo:
        pyspark_version, pyspark_home = pyspark_info(lab)
        t = time.monotonic()
        kv, why = spark_kafka_version(pyspark_version)
        spark_jars = resolve_spark_kafka(kv, pyspark_home / "jars",
                                         Path(os.environ.get("BENCH_CACHE", HERE / ".cache")))
        report["prep"]["spark_kafka"] = {"package": f"org.apache.spark:spark-sql-kafka-0-10_2.13:{kv}",
                                         "why": why, "resolve_s": round(time.monotonic() - t, 1),
                                         "jars": [Path(j).name for j in spark_jars]}
        say(f"spark-sql-kafka {kv} ({why}); jars ready in {time.monotonic() - t:.1f}s")
    flink: dict = {}
    if "flink" in todo:
        flink = prepare_flink(repo, lab)
        report["prep"]["flink"] = {k: v for k, v in flink.items() if k != "jars"} | {
            "jars": [Path(j).name for j in flink["jars"]],
            "mode": "batch over the bounded topic (scan.bounded.mode = latest-offset)",
            "partition_by": args.flink_partition_by, "parallelism": 2, "jvm_args": "-Xmx1g"}
        say(f"PyFlink {flink['pyflink']} ready ({flink['install_s']:.1f}s incl. the install check)")
    report["versions"] = versions(landfall, lab, pyspark_version)
    if flink:
        report["versions"]["pyflink"] = flink["pyflink"]

    try:
        input_bytes = {}
        if KAFKA4 & set(todo) or AMQP & set(todo):
            cmd = [gen, "--events", str(n), "--seed", str(args.seed)]
            if KAFKA4 & set(todo):
                cmd += ["--topic", names["t4"], "--partitions", "4"]
            if "bare-amqp" in todo:
                cmd += ["--queue", names["qbare"]]
            if "landfall-rabbitmq" in todo:
                cmd += ["--queue", names["qland"]]
            say(f"generating {n} events: {' '.join(cmd[5:])}")
            g = run(cmd)
            print(g.stdout.strip(), flush=True)
            res = result_line(g.stdout)
            input_bytes["main"] = res["bytes"]
            report["prep"]["generate"] = res
        if "landfall-200" in todo:
            say(f"generating {n} events with 200 shards into {names['t200']}")
            g = run([gen, "--events", str(n), "--seed", str(args.seed), "--shard",
                     "--topic", names["t200"], "--partitions", "4"])
            print(g.stdout.strip(), flush=True)
            res = result_line(g.stdout)
            input_bytes["t200"] = res["bytes"]
            report["prep"]["generate_200"] = res

        conf = tmp / "landfall.yaml"
        conf.write_text("log_level: warn\n"
                        f"pipelines_dir: {tmp}\n")
        timeout = args.timeout or 300 + n / 1000

        def pipeline(template: str, name: str, **subs) -> Path:
            text = string.Template((HERE / "pipelines" / template).read_text())
            path = tmp / f"{name}.yaml"
            path.write_text(text.substitute(name=name, group=f"{name}-{run_id}", **subs))
            return path

        def landfall_cmd(p: Path) -> list[str]:
            return [str(landfall), "--config", str(conf), "run", "--until-caught-up", str(p)]

        for c in todo:
            out_dir, local_out, expect, rows, env, suffix = None, None, n, None, None, ".parquet"
            bytes_in = input_bytes.get("t200" if c == "landfall-200" else "main", 0)
            if c == "raw-drain":
                cmd = [drain, "--topic", names["t4"]]
            elif c == "landfall-hdfs":
                out_dir = f"{hdfs_root}/landfall-hdfs"
                cmd = landfall_cmd(pipeline("kafka-hdfs.yaml", "bench-hdfs", topic=names["t4"], path=out_dir))
            elif c == "landfall-local":
                local_out = tmp / "landfall-local"
                cmd = landfall_cmd(pipeline("kafka-local.yaml", "bench-local", topic=names["t4"], path=str(local_out)))
            elif c == "landfall-200":
                out_dir = f"{hdfs_root}/landfall-200"
                cmd = landfall_cmd(pipeline("kafka-hdfs-200.yaml", "bench-200", topic=names["t200"], path=out_dir))
            elif c == "landfall-rabbitmq":
                out_dir = f"{hdfs_root}/landfall-rabbitmq"
                cmd = landfall_cmd(pipeline("rabbitmq-hdfs.yaml", "bench-rabbitmq", queue=names["qland"], path=out_dir))
            elif c == "bare-amqp":
                cmd = [bare, "--uri", AMQP_URI, "--queue", names["qbare"], "--expect", str(n)]
            elif c == "spark":
                out_dir = f"{hdfs_root}/spark"
                spark_submit = lab / "bin" / "spark-submit"
                cmd = [str(spark_submit), "--jars", ",".join(spark_jars), str(HERE / "spark_stream.py"),
                       "--brokers", BROKERS, "--topic", names["t4"],
                       "--path", f"{HDFS_URL}{out_dir}", "--checkpoint", f"{HDFS_URL}{hdfs_root}/spark-checkpoint"]
            elif c == "flink":
                out_dir, suffix = f"{hdfs_root}/flink", ""
                cmd = [str(lab / "bin" / "flink-python"), str(HERE / "flink_sql.py"),
                       "--brokers", BROKERS, "--topic", names["t4"], "--group", f"bench-flink-{run_id}",
                       "--path", f"{HDFS_URL}{out_dir}", "--jars", ",".join(flink["jars"]),
                       "--partition-by", args.flink_partition_by, "--parallelism", "2"]
                # One JVM runs the whole local cluster: give it the heap Spark's driver has (1g).
                (tmp / "flink-log").mkdir(exist_ok=True)
                env = {**os.environ, "JVM_ARGS": "-Xmx1g", "FLINK_LOG_DIR": str(tmp / "flink-log")}
            say(f"running {c}")
            load = os.getloadavg()[0]  # other work on the machine skews wall time: record it
            m = measure(cmd, tmp, c, timeout, env=env)
            if m["wall_s"] >= timeout:
                m["rc"] = m["rc"] or -9
                m["stderr"] += f"\nkilled after the {timeout:.0f} s timeout"
            entry = {k: v for k, v in m.items() if k not in ("stdout", "stderr")}
            entry["command"] = " ".join(cmd)
            entry["input_bytes"] = bytes_in
            entry["loadavg_1m_before"] = round(load, 2)
            if m["rc"] != 0:
                entry["status"] = f"failed (rc {m['rc']}): {tail(m['stderr'] or m['stdout'])}"
            else:
                entry["status"] = "ok"
                out = m["stdout"]
                if c.startswith("landfall"):
                    found = re.search(r"(\d+) events \((\d+) rejected\)", out)
                    rows = int(found.group(1)) if found else None
                    if found and int(found.group(2)):
                        entry["status"] = f"ok, {found.group(2)} rejected"
                    entry["summary"] = out.strip()
                elif c == "spark":
                    r = result_line(out)
                    rows = r.get("rows")
                    entry["spark"] = r
                elif c == "flink":
                    # Flink reports no row count of its own: Spark reads the output back
                    # (not measured), which also shows that Spark can read what Flink wrote.
                    entry["flink"] = result_line(out)
                    t = time.monotonic()
                    rb = subprocess.run([lab_python(lab), str(HERE / "read_back.py"), f"{HDFS_URL}{out_dir}"],
                                        text=True, capture_output=True)
                    entry["read_back"] = result_line(rb.stdout) | {"secs": round(time.monotonic() - t, 1)}
                    rows = entry["read_back"].get("rows")
                    if rb.returncode != 0:
                        entry["read_back"]["error"] = tail(rb.stderr)
                    elif rows == expect and entry["read_back"].get("distinct_ids") != expect:
                        entry["status"] = f"check: {entry['read_back'].get('distinct_ids')} distinct ids"
                else:
                    rows = result_line(out).get("count")
                if rows != expect:
                    entry["status"] = f"check: {rows} events seen, {expect} expected"
            entry["events"] = rows
            if out_dir:
                files = data_files(webhdfs.list_files(out_dir), out_dir, suffix)
            elif local_out:
                files = data_files(local_files(local_out), str(local_out))
            else:
                files = None
            if files is not None:
                files, entry["partitions"] = files
                entry["files"] = len(files)
                entry["files_bytes"] = sum(files)
                entry["file_sizes"] = size_distribution(files)
            ev = rows or 0
            entry["events_per_s"] = ev / m["wall_s"] if ev else None
            entry["mb_per_s"] = bytes_in / 1e6 / m["wall_s"] if ev else None
            entry["cpu_us_per_event"] = m["cpu_s"] * 1e6 / ev if ev else None
            entry["events_per_cpu_s"] = ev / m["cpu_s"] if ev and m["cpu_s"] else None
            report["contenders"][c] = entry
            say(f"{c}: {entry['status'][:200]}; {m['wall_s']:.1f}s wall, {m['cpu_s']:.1f}s CPU, "
                f"{m['peak_rss_mib']:.0f} MiB peak")
    finally:
        if not args.keep:
            cleanup(gen, names, webhdfs, hdfs_root, tmp)

    report["targets"] = targets(report["contenders"])
    text = render(report)
    print("\n" + text)
    args.results.mkdir(parents=True, exist_ok=True)
    base = args.results / (report["date"] + (f"-{args.label}" if args.label else ""))
    base.with_suffix(".md").write_text(text)
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {base}.md and {base}.json")
    return 0


def cleanup(gen: str, names: dict, webhdfs: WebHdfs, hdfs_root: str, tmp: Path) -> None:
    say("cleaning up: topics, queues, HDFS and temp dir")
    for cmd in ([gen, "--delete", "--topic", names["t4"]], [gen, "--delete", "--topic", names["t200"]],
                [gen, "--delete", "--queue", names["qbare"], "--queue", names["qland"]]):
        subprocess.run(cmd, capture_output=True)
    try:
        webhdfs.delete(hdfs_root)
    except (urllib.error.URLError, OSError) as e:
        say(f"could not delete {hdfs_root} from HDFS: {e}")
    shutil.rmtree(tmp, ignore_errors=True)


def targets(c: dict) -> list[dict]:
    """The issue's targets, each from this run's measurements (None when a side is missing)."""
    def get(name: str, key: str):
        e = c.get(name)
        return e.get(key) if e and e.get("status", "").startswith("ok") else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    drain = get("raw-drain", "events_per_s")
    # Issue 16's targets. The CPU-per-event goal holds on a box whose raw drain reaches
    # 2,000,000 events/s; its row names the drain measured in this run.
    drain_note = f" (drain {drain / 1e6:.2f} M/s; goal set for ≥ 2 M/s)" if drain else ""
    rows = [
        ("Landfall Kafka→HDFS events/s ÷ raw drain events/s", ratio(get("landfall-hdfs", "events_per_s"), drain),
         ">=", 0.40, "{:.0%}"),
        ("Landfall Kafka→HDFS CPU s ÷ wall s (both cores busy)", ratio(get("landfall-hdfs", "cpu_s"),
         get("landfall-hdfs", "wall_s")), ">=", 1.6, "{:.2f}"),
        ("Landfall Kafka→HDFS CPU µs per event" + drain_note, get("landfall-hdfs", "cpu_us_per_event"), "<=", 1.3,
         "{:.2f} µs"),
        ("Landfall events per CPU-second ÷ Spark's", ratio(get("landfall-hdfs", "events_per_cpu_s"),
         get("spark", "events_per_cpu_s")), ">=", 20.0, "{:.1f}×"),
        ("Landfall events per CPU-second ÷ Flink SQL's", ratio(get("landfall-hdfs", "events_per_cpu_s"),
         get("flink", "events_per_cpu_s")), ">=", 5.0, "{:.1f}×"),
        ("Landfall RabbitMQ→HDFS events/s ÷ bare AMQP consumer's", ratio(get("landfall-rabbitmq", "events_per_s"),
         get("bare-amqp", "events_per_s")), ">=", 0.80, "{:.0%}"),
        ("Landfall peak RSS, 4-partition topic (MiB)", get("landfall-hdfs", "peak_rss_mib"), "<=", 256.0, "{:.0f} MiB"),
        ("Landfall events/s, 200 partition values", get("landfall-200", "events_per_s"), ">=", 500_000.0, "{:,.0f}"),
        ("Landfall peak RSS, 200 open partitions (MiB)", get("landfall-200", "peak_rss_mib"), "<=", 256.0, "{:.0f} MiB"),
    ]
    out = []
    for name, value, op, goal, fmt in rows:
        if value is None:
            verdict = "n/a"
        else:
            verdict = "PASS" if (value >= goal if op == ">=" else value <= goal) else "MISS"
        goal_text = fmt.format(goal)
        out.append({"target": name, "value": value, "shown": fmt.format(value) if value is not None else "—",
                    "goal": f"{op.replace('>=', '≥').replace('<=', '≤')} {goal_text}", "verdict": verdict})
    return out


def render(r: dict) -> str:
    m, v = r["machine"], r["versions"]
    lines = [f"# Landfall benchmark, {r['date']} (run {r['run_id']})", "",
             f"{r['events']:,} events (seed {r['seed']}). Machine: {m['nproc']} CPUs ({m['cpu']}), "
             f"{m['ram_gib']} GiB RAM, kernel {m['kernel']}. Versions: {v['landfall']}, pyspark {v['pyspark']}, "
             f"Kafka {v['kafka']}, RabbitMQ {v['rabbitmq']}.", ""]
    sk = r["prep"].get("spark_kafka")
    if sk:
        lines += [f"Spark Kafka connector: {sk['package']} ({sk['why']}).", ""]
    fl = r["prep"].get("flink")
    if fl:
        kafka_jar = next((j for j in fl["jars"] if j.startswith("flink-sql-connector-kafka")), "?")
        parquet_jar = next((j for j in fl["jars"] if j.startswith("flink-parquet")), "?")
        lines += [f"Flink SQL: PyFlink {fl['pyflink']} (local mini-cluster, parallelism {fl['parallelism']}, "
                  f"JVM {fl['jvm_args']}), {kafka_jar[:-4]}, {parquet_jar[:-4]}, {', '.join(j[:-4] for j in fl['hadoop_client'])}; "
                  f"{fl['mode']}; PARTITIONED BY ({fl['partition_by'].replace(',', ', ')}); row count read back with Spark.", ""]
    lines += ["| contender | status | events | wall s | events/s | MB/s | CPU s | µs CPU/event | peak RSS MiB | partitions | files | total MB | avg MB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(x, spec):
        return "—" if x is None else format(x, spec)
    for name, e in r["contenders"].items():
        files = e.get("files")
        avg = e["files_bytes"] / files / 1e6 if files else None
        status = e["status"].replace("|", "/")
        lines.append(
            f"| {name} | {status[:160]} | {f(e.get('events'), ',')} | {e['wall_s']:.1f} | {f(e['events_per_s'], ',.0f')} | "
            f"{f(e['mb_per_s'], '.1f')} | {e['cpu_s']:.1f} | {f(e['cpu_us_per_event'], '.2f')} | {e['peak_rss_mib']:.0f} | "
            f"{f(e.get('partitions'), 'd')} | {f(files, 'd')} | {f(e['files_bytes'] / 1e6 if files is not None else None, '.1f')} | {f(avg, '.2f')} |")
    sized = [(name, e["file_sizes"]) for name, e in r["contenders"].items() if e.get("file_sizes")]
    if sized:
        lines += ["", "File sizes (MB; Spark reads best near 128 MiB):", "",
                  "| contender | min | p10 | p50 | p90 | max | files under 8 MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, d in sized:
            mb = [f"{d[k] / 1e6:.2f}" for k in ("min", "p10", "p50", "p90", "max")]
            lines.append(f"| {name} | {' | '.join(mb)} | {d['under_8mib']} |")
    lines += ["", "| target | measured | goal | verdict |", "|---|---:|---|---|"]
    for t in r["targets"]:
        lines.append(f"| {t['target']} | {t['shown']} | {t['goal']} | {t['verdict']} |")
    lines += ["", "Wall time covers the whole process (start-up, connecting, consuming, publishing, exit). "
              "CPU = user+sys of the process tree (rusage via wait4, cross-checked by /proc sampling); "
              "broker and NameNode CPU is not included. MB/s = JSON input bytes ÷ wall seconds.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
