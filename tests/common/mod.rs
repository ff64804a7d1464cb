//! Shared harness for the integration tests: addresses of the lab services, loud failures when
//! one is missing, unique names per test, and Spark through the lab's pyspark.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub const KAFKA: &str = "127.0.0.1:9092";
pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const HDFS_URL: &str = "hdfs://127.0.0.1:9000";

/// Fails the test (never skips) when a lab service is not listening, naming it and the fix.
pub fn require(service: &str, addr: &str) {
    let sock: SocketAddr = addr.parse().expect("lab address");
    if TcpStream::connect_timeout(&sock, Duration::from_secs(3)).is_err() {
        panic!(
            "{service} is not reachable at {addr}: start the lab with `./bootstrap.sh` \
             and check `./bootstrap.sh status`"
        );
    }
}

pub fn require_kafka() {
    require("Kafka", KAFKA);
}
pub fn require_rabbitmq() {
    require("RabbitMQ", "127.0.0.1:5672");
}
pub fn require_hdfs() {
    require("HDFS NameNode", "127.0.0.1:9000");
    require("HDFS DataNode", "127.0.0.1:9866");
}

/// A name no other test run uses: `prefix-<pid>-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab directory (`.lab/` unless LANDFALL_LAB says otherwise).
pub fn lab_dir() -> PathBuf {
    std::env::var_os("LANDFALL_LAB").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".lab"))
}

/// Runs a Python script with the lab's pyspark (Spark in local mode, lab HDFS as default FS)
/// and returns its stdout. Panics with Spark's stderr when the script fails.
pub fn run_spark(script: &str, args: &[&str]) -> String {
    let python = lab_dir().join("bin/lab-python");
    assert!(
        python.exists(),
        "Spark is not installed at {}: run `./bootstrap.sh` first",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo_root().join("tests/spark").join(script))
        .args(args)
        .output()
        .expect("start the lab's python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Spark script {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
