//! [`FileStore`] on HDFS through the pure-Rust `hdfs-native` client (no JVM, no libhdfs).
//!
//! Two properties of the client shape this file:
//! - When the NameNode is down, hdfs-native keeps failing over and sleeping for about two
//!   minutes before it returns an error. Every call here is therefore bounded by our own
//!   timeout (default [`DEFAULT_TIMEOUT`]) and reported as [`StoreError::Transient`] with a
//!   hint naming the NameNode, so an operator sees the state at once instead of a silent hang.
//! - A write RPC whose answer is lost (connection reset, timeout) may still have been
//!   committed by the NameNode. `create` and `rename` can thus report a transient failure
//!   although they took effect. `rename` resolves that itself by looking at `src` and `dst`;
//!   after a failed `create` the caller must re-check (a retry may see `AlreadyExists` for the
//!   file its own first attempt created; staging names are unique, so deleting and
//!   re-creating it is safe).

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use hdfs_native::file::FileWriter;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};

use super::store::{FileStatus, FileStore, StoreError, StoreWriter};

/// Upper bound on one store call (one RPC, or one chunk written to the DataNode pipeline).
/// Long enough for a 4 MiB write to a busy DataNode, short enough that a dead NameNode is
/// reported well before hdfs-native's own ~2 minute failover loop gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Permission of directories Landfall creates (`rwxr-xr-x`, what `hdfs dfs -mkdir` gives
/// under the default umask), so Spark jobs of other users can list the table.
const DIR_PERMISSION: u32 = 0o755;

/// An HDFS cluster (single NameNode URL, or an HA nameservice / viewfs from Hadoop config).
#[derive(Clone)]
pub struct HdfsStore {
    client: Client,
    /// The URL as configured, for messages: `hdfs://127.0.0.1:9000`.
    url: String,
    /// `host:port` probed after a timeout to tell "NameNode down" from "NameNode slow";
    /// `None` for logical nameservices, whose addresses live in Hadoop config.
    probe_addr: Option<String>,
    /// Who the NameNode sees, for the hint of a permission it denies.
    user: String,
    timeout: Duration,
}

impl std::fmt::Debug for HdfsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsStore").field("url", &self.url).field("timeout", &self.timeout).finish()
    }
}

impl HdfsStore {
    /// Builds the client; no connection is made until the first call. Call it inside the
    /// tokio runtime: hdfs-native spawns its I/O tasks on the current runtime.
    pub fn new(url: &str, user: Option<&str>) -> Result<HdfsStore, StoreError> {
        HdfsStore::with_config(url, user, std::iter::empty())
    }

    /// [`HdfsStore::new`] with Hadoop client settings (a pipeline's `sink.hdfs.options`), which
    /// override those read from `HADOOP_CONF_DIR`: e.g. `dfs.ha.namenodes.ns1` and
    /// `dfs.namenode.rpc-address.ns1.nn1` make `hdfs://ns1` resolvable without any XML file.
    pub fn with_config<'a>(
        url: &str,
        user: Option<&str>,
        config: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<HdfsStore, StoreError> {
        let config: Vec<(&str, &str)> = config.into_iter().collect();
        let mut builder = ClientBuilder::new().with_url(url);
        if !config.is_empty() {
            builder = builder.with_config(config);
        }
        if let Some(user) = user {
            builder = builder.with_user(user);
        }
        let client = builder.build().map_err(|e| StoreError::Fatal {
            op: "connect",
            path: url.to_string(),
            message: e.to_string(),
            hint: "check sink.hdfs.url (hdfs://host:port or hdfs://nameservice), sink.hdfs.options and the Hadoop \
                   config in HADOOP_CONF_DIR"
                .to_string(),
        })?;
        // Read as hdfs-native reads it (the `url` crate): userinfo is not part of the address.
        let probe_addr = url::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "hdfs")
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port()?)));
        Ok(HdfsStore {
            client,
            url: url.trim_end_matches('/').to_string(),
            probe_addr,
            user: describe_user(user),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Replaces [`DEFAULT_TIMEOUT`] (tests use a short one).
    pub fn with_timeout(mut self, timeout: Duration) -> HdfsStore {
        self.timeout = timeout;
        self
    }

    fn ctx(&self, op: &'static str, path: &str) -> Ctx {
        Ctx {
            op,
            path: path.to_string(),
            url: self.url.clone(),
            probe_addr: self.probe_addr.clone(),
            user: self.user.clone(),
            timeout: self.timeout,
        }
    }

    async fn rename_once(&self, src: &str, dst: &str) -> Result<(), StoreError> {
        if let Some(parent) = parent_of(dst) {
            let ctx = self.ctx("rename", dst);
            ctx.run(self.client.mkdirs(parent, DIR_PERMISSION, true)).await?;
        }
        let ctx = self.ctx("rename", src);
        match ctx.run(self.client.rename(src, dst, false)).await {
            // The NameNode reports a missing destination parent as FileNotFound too; we created
            // it above, so NotFound here is about `src`.
            Err(StoreError::NotFound { .. }) => Err(StoreError::NotFound { path: src.to_string() }),
            Err(StoreError::AlreadyExists { .. }) => Err(StoreError::AlreadyExists { path: dst.to_string() }),
            other => other,
        }
    }
}

/// What one call was doing, so an error can say which call, on which path, and what to check.
struct Ctx {
    op: &'static str,
    path: String,
    url: String,
    probe_addr: Option<String>,
    user: String,
    timeout: Duration,
}

impl Ctx {
    /// Runs one hdfs-native future under the timeout and classifies its error.
    async fn run<T>(&self, fut: impl Future<Output = Result<T, HdfsError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify(self.op, &self.path, &self.url, &self.user, err)),
            Err(_) => Err(self.timed_out().await),
        }
    }

    /// After a timeout, a one-second TCP probe tells a dead NameNode from a slow one.
    async fn timed_out(&self) -> StoreError {
        let message = format!("no answer within {:?}", self.timeout);
        let down = match &self.probe_addr {
            Some(addr) => matches!(
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr.as_str())).await,
                Ok(Err(_)) | Err(_)
            ),
            None => false,
        };
        let hint = if down {
            format!("the NameNode at {} does not accept connections; is it up? `./bootstrap.sh status`", self.url)
        } else {
            format!(
                "is the NameNode at {} up and out of safe mode, and are DataNodes up? `./bootstrap.sh status`",
                self.url
            )
        };
        StoreError::Transient { op: self.op, path: self.path.clone(), message, hint }
    }
}

/// The user the NameNode sees, as hdfs-native picks it under simple authentication
/// (`sink.hdfs.user`, else `HADOOP_USER_NAME`, else the OS user), said so that an operator
/// knows which setting to change.
fn describe_user(configured: Option<&str>) -> String {
    match (configured, std::env::var("HADOOP_USER_NAME")) {
        (Some(user), _) => format!("HDFS user {user} (sink.hdfs.user)"),
        (None, Ok(user)) => format!("HDFS user {user} (HADOOP_USER_NAME; sink.hdfs.user overrides it)"),
        (None, Err(_)) => "the HDFS user (the OS user running Landfall, or its Kerberos principal; sink.hdfs.user \
                           overrides it)"
            .to_string(),
    }
}

/// The message of a NameNode exception without its Java stack trace, on one line: the lines
/// before the first `at …` frame, joined (a safe mode exception says on its second line
/// whether it was turned on manually). The whole answer goes to `debug`.
fn java_message(class: &str, msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("at ") && !l.starts_with("..."))
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join(" ");
    // Hadoop sends `class: message`; the class is reported on its own.
    match text.strip_prefix(class).and_then(|t| t.strip_prefix(": ")) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Maps an hdfs-native error onto the store's retry classes, with a hint for the operator.
/// `user` describes who the NameNode sees ([`describe_user`]).
fn classify(op: &'static str, path: &str, url: &str, user: &str, err: HdfsError) -> StoreError {
    let message = match &err {
        HdfsError::RPCError(class, msg) | HdfsError::FatalRPCError(class, msg) => {
            if msg.lines().nth(1).is_some() {
                tracing::debug!(op, path, class = %class, answer = %msg, "the NameNode's whole answer");
            }
            let short = class.rsplit('.').next().unwrap_or(class);
            format!("{short}: {}", java_message(class, msg))
        }
        _ => err.to_string(),
    };
    let transient = |hint: String| StoreError::Transient { op, path: path.to_string(), message: message.clone(), hint };
    let fatal = |hint: String| StoreError::Fatal { op, path: path.to_string(), message: message.clone(), hint };
    let refused = |hint: String| StoreError::Refused { op, path: path.to_string(), message: message.clone(), hint };
    let namenode_hint = || match op {
        // Data moves between us and DataNodes; either end may be the one that went away.
        "write" | "close" | "read" => {
            format!("are the NameNode at {url} and the DataNodes up? `./bootstrap.sh status`")
        }
        _ => format!("is the NameNode at {url} up? `./bootstrap.sh status`"),
    };
    let datanode_hint = || {
        "no DataNode could take or serve the block: are DataNodes up (`./bootstrap.sh status`, \
         `hdfs dfsadmin -report`)? Do they have room for a full block per open file (the \
         NameNode reserves dfs.blocksize for each block being written: open files x blocksize \
         must fit their free space; lower roll.max_open_files or dfs.blocksize)?"
            .to_string()
    };
    let permission_hint = || {
        format!(
            "the NameNode denied {user} the access it names on the inode it names (writing needs w and x on \
             the parent directory, reading r on the file, and every directory above needs x): `hdfs dfs -ls -d \
             <inode>` shows owner and mode; grant it with `hdfs dfs -chmod`/`-chown`, or run as a user who has \
             it; retried with backoff until then"
        )
    };
    let safe_mode_hint = |lower: &str| {
        if lower.contains("turned on manually") || lower.contains("resources are low") {
            format!(
                "the NameNode at {url} was put in safe mode by hand (or for low resources) and stays there until \
                 someone ends it: `hdfs dfsadmin -safemode get`, then `hdfs dfsadmin -safemode leave` once its \
                 cause is fixed; retried with backoff until then"
            )
        } else {
            format!(
                "the NameNode at {url} is in safe mode (normal for a while after a restart, until enough blocks \
                 are reported); `hdfs dfsadmin -safemode get`; if it lasts, its log says why (missing blocks, \
                 low disk); retried with backoff"
            )
        }
    };
    match &err {
        HdfsError::AlreadyExists(_) => StoreError::AlreadyExists { path: path.to_string() },
        HdfsError::FileNotFound(_) => StoreError::NotFound { path: path.to_string() },
        HdfsError::RPCError(class, msg) | HdfsError::FatalRPCError(class, msg) => {
            let class = class.rsplit('.').next().unwrap_or(class);
            let lower = msg.to_ascii_lowercase();
            match class {
                "FileNotFoundException" => StoreError::NotFound { path: path.to_string() },
                "FileAlreadyExistsException" | "AlreadyBeingCreatedException" => {
                    StoreError::AlreadyExists { path: path.to_string() }
                }
                "AccessControlException" | "AuthorizationException" => refused(permission_hint()),
                "SafeModeException" => transient(safe_mode_hint(&lower)),
                "RetriableException"
                | "StandbyException"
                | "ObserverRetryOnActiveException"
                | "NotReplicatedYetException" => transient(namenode_hint()),
                "SaslException" | "GSSException" | "SecretManager$InvalidToken" | "InvalidToken" => {
                    fatal("authentication failed: check the Kerberos ticket (`klist`) or delegation token".to_string())
                }
                "NSQuotaExceededException" | "DSQuotaExceededException" | "QuotaExceededException" => refused(
                    "a quota on the directory the NameNode names is exhausted (a space quota counts each \
                         block being written at its full size times replication): `hdfs dfs -count -q -h -v \
                         <dir>` shows quotas and usage; raise it (`hdfs dfsadmin -setSpaceQuota`, \
                         `-setQuota`) or free space; retried with backoff until then"
                        .to_string(),
                ),
                "ParentNotDirectoryException" | "PathIsNotDirectoryException" => {
                    fatal(format!("a parent of {path} is a file, not a directory"))
                }
                _ if lower.contains("safe mode") => transient(safe_mode_hint(&lower)),
                _ if lower.contains("block locations")
                    || lower.contains("datanode(s) running")
                    || lower.contains("minreplication") =>
                {
                    transient(datanode_hint())
                }
                // A FatalRPCError means hdfs-native dropped the connection; a new one may work.
                _ if matches!(err, HdfsError::FatalRPCError(..)) => transient(namenode_hint()),
                _ => fatal(format!("the NameNode rejected the call with {class}; see its log")),
            }
        }
        HdfsError::IOError(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                transient(format!("the NameNode at {url} refuses connections; is it up? `./bootstrap.sh status`"))
            }
            _ => transient(namenode_hint()),
        },
        HdfsError::DataTransferError(_) | HdfsError::BlocksNotFound(_) | HdfsError::ChecksumError => {
            transient(datanode_hint())
        }
        HdfsError::OperationFailed(msg) if msg.contains("complete") => transient(format!(
            "the NameNode did not confirm the last block of {path} in time; are DataNodes up? `./bootstrap.sh status`"
        )),
        HdfsError::IsADirectoryError(_) => fatal(format!("{path} is a directory")),
        HdfsError::SASLError(_) | HdfsError::GSSAPIError(..) | HdfsError::NoSASLMechanism => fatal(
            "authentication failed: check the Kerberos ticket (`klist`) and hadoop.security.authentication".to_string(),
        ),
        HdfsError::InvalidPath(_) | HdfsError::InvalidArgument(_) | HdfsError::UrlParseError(_) => {
            fatal("check the path and sink.hdfs.url".to_string())
        }
        _ => fatal(format!("unexpected hdfs-native error talking to {url}")),
    }
}

/// `/a/b/c` → `Some("/a/b")`; `/c` and `/` → `None` (the root always exists).
fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&trimmed[..i]),
    }
}

fn to_status(s: hdfs_native::client::FileStatus) -> FileStatus {
    FileStatus { path: s.path, is_dir: s.isdir, len: s.length as u64, modified_ms: s.modification_time }
}

#[async_trait]
impl FileStore for HdfsStore {
    async fn create(&self, path: &str) -> Result<Box<dyn StoreWriter>, StoreError> {
        let options = WriteOptions { overwrite: false, create_parent: true, ..WriteOptions::default() };
        let ctx = self.ctx("create", path);
        let inner = ctx.run(self.client.create(path, options)).await?;
        Ok(Box::new(HdfsWriter { inner, ctx: self.ctx("write", path) }))
    }

    async fn rename(&self, src: &str, dst: &str) -> Result<(), StoreError> {
        let err = match self.rename_once(src, dst).await {
            Ok(()) => return Ok(()),
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        // The answer was lost: the rename may have happened. `src` gone and `dst` present
        // means it did (staging names are unique to one writer, so nobody else moved it).
        let src_state = self.stat(src).await;
        let dst_state = self.stat(dst).await;
        if let (Ok(None), Ok(Some(_))) = (&src_state, &dst_state) {
            tracing::warn!(src, dst, error = %err, "rename reported an error but took effect");
            return Ok(());
        }
        Err(err)
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStatus>, StoreError> {
        match self.ctx("stat", path).run(self.client.get_file_info(path)).await {
            Ok(status) => Ok(Some(to_status(status))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, dir: &str) -> Result<Vec<FileStatus>, StoreError> {
        match self.ctx("list", dir).run(self.client.list_status(dir, false)).await {
            Ok(entries) => Ok(entries.into_iter().map(to_status).collect()),
            Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, path: &str) -> Result<Bytes, StoreError> {
        let ctx = self.ctx("read", path);
        ctx.run(async {
            let reader = self.client.read(path).await?;
            reader.read_range(0, reader.file_length()).await
        })
        .await
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        let ctx = self.ctx("read", path);
        ctx.run(async {
            let reader = self.client.read(path).await?;
            let end = offset.saturating_add(len).min(reader.file_length() as u64);
            let start = offset.min(end);
            reader.read_range(start as usize, (end - start) as usize).await
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        match self.ctx("delete", path).run(self.client.delete(path, true)).await {
            // `false` means "nothing there": already in the state the caller wants.
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn mkdirs(&self, path: &str) -> Result<(), StoreError> {
        self.ctx("mkdirs", path).run(self.client.mkdirs(path, DIR_PERMISSION, true)).await
    }

    async fn set_permission(&self, path: &str, mode: u32) -> Result<(), StoreError> {
        self.ctx("set permission", path).run(self.client.set_permission(path, mode)).await
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// A file under construction on HDFS. Dropping it without `close` leaves the file
/// incomplete (and leased until hdfs-native's lease expires); recovery deletes such files.
struct HdfsWriter {
    inner: FileWriter,
    ctx: Ctx,
}

#[async_trait]
impl StoreWriter for HdfsWriter {
    /// A timed-out write leaves the block pipeline in an unknown state: the caller must
    /// abandon this writer (and delete the file) rather than write more.
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.ctx.run(self.inner.write_bytes(data)).await.map(|_| ())
    }

    async fn close(mut self: Box<Self>) -> Result<(), StoreError> {
        let started = Instant::now();
        self.ctx.op = "close";
        let result = self.ctx.run(self.inner.close()).await;
        tracing::debug!(path = %self.ctx.path, elapsed_ms = started.elapsed().as_millis() as u64, "closed HDFS file");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> HdfsError {
        HdfsError::IOError(std::io::Error::new(kind, "boom"))
    }

    fn rpc(class: &str, msg: &str) -> HdfsError {
        HdfsError::RPCError(class.to_string(), msg.to_string())
    }

    const URL: &str = "hdfs://127.0.0.1:9000";
    const USER: &str = "HDFS user lf (sink.hdfs.user)";

    #[test]
    fn classifies_namenode_exceptions() {
        let e = classify(
            "create",
            "/a",
            URL,
            USER,
            rpc("org.apache.hadoop.hdfs.server.namenode.SafeModeException", "Name node is in safe mode."),
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("safe mode"), "{e}");

        let e = classify(
            "create",
            "/a",
            URL,
            USER,
            rpc("org.apache.hadoop.security.AccessControlException", "Permission denied: user=x"),
        );
        assert!(e.needs_person() && !e.is_transient(), "{e}");
        assert!(
            matches!(&e, StoreError::Refused { hint, .. } if hint.contains("HDFS user lf (sink.hdfs.user)") && hint.contains("hdfs dfs -ls -d")),
            "{e}"
        );

        assert!(matches!(
            classify("stat", "/a", URL, USER, rpc("java.io.FileNotFoundException", "File does not exist: /a")),
            StoreError::NotFound { path } if path == "/a"
        ));
        assert!(matches!(
            classify("rename", "/a", URL, USER, rpc("org.apache.hadoop.fs.FileAlreadyExistsException", "exists")),
            StoreError::AlreadyExists { path } if path == "/a"
        ));
        assert!(matches!(
            classify("create", "/a", URL, USER, HdfsError::AlreadyExists("/a".into())),
            StoreError::AlreadyExists { .. }
        ));

        let e = classify(
            "close",
            "/a",
            URL,
            USER,
            rpc(
                "java.io.IOException",
                "File /a could only be written to 0 of the 1 minReplication nodes. There are 0 datanode(s) running",
            ),
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("DataNodes up"), "{e}");
        assert!(classify("read", "/a", URL, USER, rpc("java.io.IOException", "Could not get block locations"))
            .is_transient());
        assert!(!classify("create", "/a", URL, USER, rpc("org.apache.hadoop.fs.InvalidPathException", "bad"))
            .is_transient());
    }

    #[test]
    fn a_namenode_answer_loses_its_stack_trace_and_keeps_its_message() {
        let answer = "org.apache.hadoop.hdfs.server.namenode.SafeModeException: Cannot create file/t/x. Name node is \
                      in safe mode.\nIt was turned on manually. Use \"hdfs dfsadmin -safemode leave\" to turn safe mode \
                      off. NamenodeHostName:localhost\n\tat org.apache.hadoop.hdfs.server.namenode.FSNamesystem.\
                      newSafemodeException(FSNamesystem.java:1640)\n\tat java.base/java.lang.Thread.run(Thread.java:840)\n";
        let e = classify(
            "create",
            "/t/x",
            URL,
            USER,
            rpc("org.apache.hadoop.hdfs.server.namenode.SafeModeException", answer),
        );
        assert!(e.is_transient(), "{e}");
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.contains("FSNamesystem.java"), "{text}");
        assert!(text.starts_with("create /t/x: SafeModeException: Cannot create file/t/x."), "{text}");
        assert!(text.contains("turned on manually") && text.contains("`hdfs dfsadmin -safemode leave`"), "{text}");

        let quota = "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException: The DiskSpace quota of /t is \
                     exceeded: quota = 1 B = 1 B but diskspace consumed = 402653184 B = 384 MB\n\tat X.y(X.java:1)";
        let e = classify(
            "close",
            "/t/x",
            URL,
            USER,
            rpc("org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", quota),
        );
        assert!(e.needs_person(), "{e}");
        assert!(e.to_string().contains("DSQuotaExceededException: The DiskSpace quota of /t is exceeded"), "{e}");
        assert!(e.to_string().contains("hdfs dfs -count -q"), "{e}");
    }

    #[test]
    fn classifies_connection_errors_as_transient_with_a_namenode_hint() {
        let e = classify("stat", "/a", URL, USER, io(std::io::ErrorKind::ConnectionRefused));
        assert!(
            matches!(&e, StoreError::Transient { hint, .. } if hint.contains("hdfs://127.0.0.1:9000") && hint.contains("./bootstrap.sh status")),
            "{e}"
        );
        assert!(classify("stat", "/a", URL, USER, io(std::io::ErrorKind::ConnectionReset)).is_transient());
        assert!(classify("write", "/a", URL, USER, HdfsError::DataTransferError("pipeline".into())).is_transient());
        assert!(classify("read", "/a", URL, USER, HdfsError::BlocksNotFound("/a".into())).is_transient());
        assert!(!classify("stat", "/a", URL, USER, HdfsError::InvalidPath("x".into())).is_transient());
    }

    #[test]
    fn parent_of_strips_the_last_component() {
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_of("/a/b/"), Some("/a"));
        assert_eq!(parent_of("/a"), None);
        assert_eq!(parent_of("/"), None);
    }

    #[tokio::test]
    async fn a_dead_namenode_is_reported_within_the_timeout() {
        // Port 9 (discard) is closed on the lab machine; hdfs-native would retry ~2 minutes.
        let store = HdfsStore::new("hdfs://127.0.0.1:9", None).unwrap().with_timeout(Duration::from_millis(1500));
        let started = std::time::Instant::now();
        let err = store.stat("/x").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("hdfs://127.0.0.1:9"), "{err}");
        assert!(err.to_string().contains("./bootstrap.sh status"), "{err}");
    }
}
