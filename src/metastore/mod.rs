//! The Hive Metastore: tables and partitions for what Landfall lands, so that users query
//! `spark.table("landing.clicks")` (or Hive, Trino, Impala) without `MSCK REPAIR TABLE`.
//!
//! [`MetastoreClient`] speaks the metastore's Thrift interface directly (binary protocol,
//! unframed, no SASL: what a metastore without Kerberos serves) over one tokio TCP connection,
//! and makes only the calls registration needs: `get_database`/`create_database`,
//! `get_table_req`/`create_table`, `alter_table_with_environment_context` (a table gains
//! nullable columns), `add_partitions_req` (with `ifNotExists`), `get_partition` and
//! `alter_partition`. The codec is [`thrift`]; the objects are [`hms`].
//!
//! Why hand-written rather than generated: the maintained crate (`hive_metastore`, volo-thrift)
//! compiles ~9 MB of generated code and ~45 more crates for 8 calls, and its Hive 3 IDL has no
//! way to say which calls a Hive 4 server removed (`get_table` is gone there); generating from
//! the IDL at build time needs the Thrift compiler beside cargo. The calls used here exist from
//! Hive 3.0 to 4.x; each one is exercised against the lab's metastore by
//! `tests/hive_metastore.rs`.

pub mod hms;
pub mod registrar;
pub mod table;
pub mod thrift;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

pub use hms::{Column, Database, Fit, Partition, Table, TableSpec};
use thrift::{Struct, Value};

/// What went wrong talking to the metastore. [`MetastoreError::is_transient`] separates what a
/// retry can fix (unreachable, hung, restarted, a server-side `MetaException`) from what a
/// person must (a wrong URI, an incompatible table, an object the metastore refuses).
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    #[error("Hive Metastore URI {uri:?}: {why} (the lab's is thrift://127.0.0.1:9083)")]
    BadUri { uri: String, why: String },

    #[error(
        "cannot reach the Hive Metastore at {addr}: {source}; check that it runs (in the lab: \
         `./bootstrap.sh status`, `./bootstrap.sh start hive-metastore`) and that the URI names its thrift port"
    )]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "Hive Metastore at {addr}: {call} got no answer within {timeout:?}; the metastore is hung or \
         overloaded (check its log and its backing database)"
    )]
    Timeout { addr: String, call: &'static str, timeout: Duration },

    #[error("Hive Metastore at {addr}: {call}: the connection failed mid-call: {source}; the metastore restarted or the network dropped")]
    Io {
        addr: String,
        call: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "Hive Metastore at {addr}: {call}: the answer is not a Thrift reply Landfall understands ({detail}); \
         check that {addr} is a metastore's thrift port without SASL/Kerberos (binary protocol, unframed)"
    )]
    Protocol { addr: String, call: &'static str, detail: String },

    /// A Thrift-level failure, e.g. "Invalid method name" from a server that lacks a call.
    #[error(
        "Hive Metastore at {addr} failed the call {call}: {message}; Landfall needs Hive 3.0 or newer \
         (get_table_req, add_partitions_req)"
    )]
    Application { addr: String, call: &'static str, message: String },

    /// The metastore answered with one of the call's declared exceptions.
    #[error("Hive Metastore refused {call} for {object}: {kind}: {message}")]
    Refused { call: &'static str, object: String, kind: &'static str, message: String },

    #[error(
        "table {table} already exists in the Hive Metastore and does not match the pipeline: {}; \
         Landfall evolves a table only by appending nullable columns: change the pipeline back, \
         alter or drop the table, or register into a new one",
        .differences.join("; ")
    )]
    Incompatible { table: String, differences: Vec<String> },
}

impl MetastoreError {
    /// Worth retrying with backoff: the metastore may come back or the server-side failure
    /// (its database, HDFS) may clear. Everything else needs a person.
    pub fn is_transient(&self) -> bool {
        match self {
            MetastoreError::Connect { .. } | MetastoreError::Timeout { .. } | MetastoreError::Io { .. } => true,
            MetastoreError::Refused { kind, .. } => *kind == "MetaException",
            _ => false,
        }
    }
}

impl crate::retry::Retryable for MetastoreError {
    fn is_transient(&self) -> bool {
        MetastoreError::is_transient(self)
    }
}

/// The `host:port` of a metastore URI, `thrift://HOST:PORT` (port 9083 when omitted), or why
/// it is not one. Pure: the config check uses it too.
pub fn parse_uri(uri: &str) -> Result<String, String> {
    let url = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not a URI ({e}); write thrift://HOST:PORT"))?;
    if url.scheme() != "thrift" {
        return Err(format!("`{uri}`: the scheme is {:?}, not thrift; write thrift://HOST:PORT", url.scheme()));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{uri}` has no host; write thrift://HOST:PORT"))?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
        return Err(format!("`{uri}`: a metastore URI has only a host and a port, thrift://HOST:PORT"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port().unwrap_or(9083);
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

/// Whether [`MetastoreClient::add_partition`] added the partition or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    AlreadyThere,
}

/// Whether [`MetastoreClient::ensure_table`] created the table, found a compatible one, or
/// evolved one (appended the nullable columns `added`).
#[derive(Debug, Clone)]
pub enum Ensured {
    Created(Table),
    Existing(Table),
    Evolved { table: Table, added: Vec<Column> },
}

impl Ensured {
    /// The table as the metastore has it now.
    pub fn table(&self) -> &Table {
        match self {
            Ensured::Created(t) | Ensured::Existing(t) | Ensured::Evolved { table: t, .. } => t,
        }
    }
}

/// Exceptions a call declares, by result field id (`throws (1: MetaException o1, …)`).
type Throws = &'static [(i16, &'static str)];

/// A client of one metastore. Calls are serialised on one connection, opened on first use and
/// after any failure (a connection that failed mid-call may hold half a reply); every call is
/// bounded by the timeout given to [`MetastoreClient::new`].
pub struct MetastoreClient {
    addr: String,
    timeout: Duration,
    conn: Mutex<Option<TcpStream>>,
    seq: AtomicI32,
}

impl MetastoreClient {
    /// A client for `thrift://HOST:PORT` (port 9083 when omitted). Connects lazily.
    pub fn new(uri: &str, timeout: Duration) -> Result<MetastoreClient, MetastoreError> {
        let addr = parse_uri(uri).map_err(|why| MetastoreError::BadUri { uri: uri.to_string(), why })?;
        Ok(MetastoreClient { addr, timeout, conn: Mutex::new(None), seq: AtomicI32::new(0) })
    }

    /// `host:port` this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One call: send `args`, read the reply, return its success value (field 0; `None` for a
    /// `void` call) or the declared exception as [`MetastoreError::Refused`].
    async fn call(
        &self,
        call: &'static str,
        object: &str,
        args: Struct,
        throws: Throws,
    ) -> Result<Option<Value>, MetastoreError> {
        let mut guard = self.conn.lock().await;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let request = thrift::encode_call(call, seq, &args);
        // Taken out for the exchange and put back only after a whole reply: a call that fails,
        // times out or is cancelled (its future dropped) leaves no half-read connection behind.
        let mut conn = guard.take();
        let result = tokio::time::timeout(self.timeout, self.exchange(&mut conn, call, &request)).await;
        let reply = match result {
            Ok(Ok(reply)) => {
                *guard = conn;
                reply
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(MetastoreError::Timeout { addr: self.addr.clone(), call, timeout: self.timeout }),
        };
        drop(guard);
        let protocol = |detail: String| MetastoreError::Protocol { addr: self.addr.clone(), call, detail };
        if reply.method != call || reply.seq != seq {
            return Err(protocol(format!("reply to {} #{} for call {call} #{seq}", reply.method, reply.seq)));
        }
        match reply.kind {
            thrift::REPLY => {}
            thrift::EXCEPTION => {
                let message = reply.body.str(1).unwrap_or("(no message)").to_string();
                return Err(MetastoreError::Application { addr: self.addr.clone(), call, message });
            }
            other => return Err(protocol(format!("message type {other}"))),
        }
        let mut body = reply.body;
        if let Some(i) = body.fields.iter().position(|(id, _)| *id == 0) {
            return Ok(Some(body.fields.swap_remove(i).1));
        }
        if let Some((id, Value::Struct(ex))) = body.fields.first() {
            let kind = throws.iter().find(|(i, _)| i == id).map_or("an undeclared exception", |(_, k)| *k);
            let message = ex.str(1).unwrap_or("(no message)").to_string();
            return Err(MetastoreError::Refused { call, object: object.to_string(), kind, message });
        }
        Ok(None)
    }

    /// Writes the request and reads one whole reply on the (re)opened connection.
    async fn exchange(
        &self,
        conn: &mut Option<TcpStream>,
        call: &'static str,
        request: &[u8],
    ) -> Result<thrift::Message, MetastoreError> {
        if conn.is_none() {
            let stream = TcpStream::connect(self.addr.as_str())
                .await
                .map_err(|source| MetastoreError::Connect { addr: self.addr.clone(), source })?;
            stream.set_nodelay(true).ok();
            *conn = Some(stream);
        }
        let stream = conn.as_mut().expect("connected above");
        let io_err = |source| MetastoreError::Io { addr: self.addr.clone(), call, source };
        stream.write_all(request).await.map_err(io_err)?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            match thrift::decode_message(&buf) {
                Ok((message, used)) if used == buf.len() => return Ok(message),
                Ok((_, used)) => {
                    let detail = format!("{} bytes after a {used}-byte reply", buf.len() - used);
                    return Err(MetastoreError::Protocol { addr: self.addr.clone(), call, detail });
                }
                Err(thrift::DecodeError::Incomplete) => {}
                Err(thrift::DecodeError::Invalid(detail)) => {
                    return Err(MetastoreError::Protocol { addr: self.addr.clone(), call, detail })
                }
            }
            buf.reserve(64 * 1024);
            let n = stream.read_buf(&mut buf).await.map_err(io_err)?;
            if n == 0 {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the metastore closed the connection",
                )));
            }
        }
    }

    /// The database `name`, or `None`.
    pub async fn get_database(&self, name: &str) -> Result<Option<Database>, MetastoreError> {
        let args = Struct::new().with(1, Value::string(name));
        match self.call("get_database", name, args, &[(1, "NoSuchObjectException"), (2, "MetaException")]).await {
            Ok(Some(Value::Struct(s))) => Ok(Some(Database::from_thrift(&s))),
            Ok(_) => Err(self.no_value("get_database")),
            Err(MetastoreError::Refused { kind: "NoSuchObjectException", .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The database `name`, created first if missing (at `location`, or in the metastore's
    /// warehouse when `None`). Safe to race with another creator.
    pub async fn ensure_database(&self, name: &str, location: Option<&str>) -> Result<Database, MetastoreError> {
        if let Some(db) = self.get_database(name).await? {
            return Ok(db);
        }
        let args = Struct::new().with(1, Value::Struct(Database::create_struct(name, location, "created by Landfall")));
        let throws: Throws = &[(1, "AlreadyExistsException"), (2, "InvalidObjectException"), (3, "MetaException")];
        match self.call("create_database", name, args, throws).await {
            Ok(_) | Err(MetastoreError::Refused { kind: "AlreadyExistsException", .. }) => {}
            Err(e) => return Err(e),
        }
        self.get_database(name).await?.ok_or_else(|| MetastoreError::Refused {
            call: "get_database",
            object: name.to_string(),
            kind: "NoSuchObjectException",
            message: "the database is missing right after create_database succeeded".into(),
        })
    }

    /// The table `database.name`, or `None` (`get_table_req`: Hive 4 removed `get_table`).
    pub async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, MetastoreError> {
        let req = Struct::new().with(1, Value::string(database)).with(2, Value::string(name));
        let object = format!("{database}.{name}");
        let args = Struct::new().with(1, Value::Struct(req));
        match self.call("get_table_req", &object, args, &[(1, "MetaException"), (2, "NoSuchObjectException")]).await {
            Ok(Some(Value::Struct(result))) => match result.get(1) {
                Some(Value::Struct(t)) => Ok(Some(Table::from_thrift(t.clone()))),
                _ => Err(self.no_value("get_table_req")),
            },
            Ok(_) => Err(self.no_value("get_table_req")),
            Err(MetastoreError::Refused { kind: "NoSuchObjectException", .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The table `spec` describes: created (external, Parquet) if missing; an existing one
    /// as it is if it fits, evolved if it lacks only nullable columns the pipeline appends
    /// ([`Fit::AddColumns`], one [`MetastoreClient::add_columns`]); otherwise
    /// [`MetastoreError::Incompatible`] naming every difference. The database must exist
    /// ([`MetastoreClient::ensure_database`]).
    pub async fn ensure_table(&self, spec: &TableSpec) -> Result<Ensured, MetastoreError> {
        let object = format!("{}.{}", spec.database, spec.name);
        let missing = |after: &str| MetastoreError::Refused {
            call: "get_table_req",
            object: object.clone(),
            kind: "NoSuchObjectException",
            message: format!("the table is missing right after {after}"),
        };
        let table = match self.get_table(&spec.database, &spec.name).await? {
            Some(table) => table,
            None => {
                let args = Struct::new().with(1, Value::Struct(spec.create_struct(now())));
                let throws: Throws = &[
                    (1, "AlreadyExistsException"),
                    (2, "InvalidObjectException"),
                    (3, "MetaException"),
                    (4, "NoSuchObjectException"),
                ];
                let created = match self.call("create_table", &object, args, throws).await {
                    Ok(_) => true,
                    Err(MetastoreError::Refused { kind: "AlreadyExistsException", .. }) => false, // a racing creator
                    Err(e) => return Err(e),
                };
                let table = self.get_table(&spec.database, &spec.name).await?.ok_or_else(|| missing("create_table"))?;
                if created {
                    return match spec.fit(&table) {
                        Fit::Same => Ok(Ensured::Created(table)),
                        fit => Err(incompatible(&object, fit)),
                    };
                }
                table
            }
        };
        let added = match spec.fit(&table) {
            Fit::Same => return Ok(Ensured::Existing(table)),
            Fit::AddColumns(added) => added,
            fit @ Fit::Incompatible(_) => return Err(incompatible(&object, fit)),
        };
        self.add_columns(&table, &added).await?;
        let table = self.get_table(&spec.database, &spec.name).await?.ok_or_else(|| missing("alter_table"))?;
        match spec.fit(&table) {
            Fit::Same => Ok(Ensured::Evolved { table, added }),
            fit => Err(incompatible(&object, fit)),
        }
    }

    /// Appends `added` to the data columns of `table` (as read by
    /// [`MetastoreClient::get_table`]; every other field is written back as read), and to
    /// every partition's columns, in one `alter_table_with_environment_context` with
    /// `CASCADE=true`, as Hive's `ALTER TABLE … ADD COLUMNS … CASCADE`. Without it, Hive's own
    /// engine, which reads a partition with the partition's columns, would read null for the
    /// new column in files landed after the change into a partition registered before it
    /// (HIVE-6131; Spark reads the table's columns either way; docs/hive.md).
    ///
    /// Not a compare-and-set: an `ALTER TABLE` by someone else between the read and this call
    /// is overwritten. Hive 4's `expected_parameter_key`/`value` would refuse it instead, but
    /// its query fails on a metastore backed by Derby (CLOB comparison), such as the lab's.
    pub async fn add_columns(&self, table: &Table, added: &[Column]) -> Result<(), MetastoreError> {
        let object = format!("{}.{}", table.database, table.name);
        let context = BTreeMap::from([("CASCADE".to_string(), "true".to_string())]);
        let args = Struct::new()
            .with(1, Value::string(&table.database))
            .with(2, Value::string(&table.name))
            .with(3, Value::Struct(table.evolved_struct(added)))
            .with(4, Value::Struct(Struct::new().with(1, Value::string_map(&context))));
        let throws: Throws = &[(1, "InvalidOperationException"), (2, "MetaException")];
        self.call("alter_table_with_environment_context", &object, args, throws).await?;
        Ok(())
    }

    /// Adds the partition `values` of `table` at `location` unless it exists (one
    /// `add_partitions_req` with `ifNotExists`: idempotent, safe to retry and to race).
    pub async fn add_partition(
        &self,
        table: &Table,
        values: &[String],
        location: &str,
    ) -> Result<Added, MetastoreError> {
        let object = format!("{}.{} partition {}", table.database, table.name, values.join("/"));
        let part = Partition::new_struct(table, values, location, now());
        let req = Struct::new()
            .with(1, Value::string(&table.database))
            .with(2, Value::string(&table.name))
            .with(3, Value::struct_list(vec![part]))
            .with(4, Value::Bool(true)) // ifNotExists
            .with(5, Value::Bool(true)); // needResult: the added ones come back, existing ones do not
        let args = Struct::new().with(1, Value::Struct(req));
        let throws: Throws = &[(1, "InvalidObjectException"), (2, "AlreadyExistsException"), (3, "MetaException")];
        match self.call("add_partitions_req", &object, args, throws).await? {
            Some(Value::Struct(result)) => {
                let added = result.get(1).and_then(Value::as_list).is_some_and(|l| !l.is_empty());
                Ok(if added { Added::New } else { Added::AlreadyThere })
            }
            _ => Err(self.no_value("add_partitions_req")),
        }
    }

    /// The partition `values` of `database.table`, or `None`.
    pub async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Option<Partition>, MetastoreError> {
        let object = format!("{database}.{table} partition {}", values.join("/"));
        let args = Struct::new()
            .with(1, Value::string(database))
            .with(2, Value::string(table))
            .with(3, Value::string_list(values));
        match self.call("get_partition", &object, args, &[(1, "MetaException"), (2, "NoSuchObjectException")]).await {
            Ok(Some(Value::Struct(p))) => Ok(Some(Partition::from_thrift(p))),
            Ok(_) => Err(self.no_value("get_partition")),
            Err(MetastoreError::Refused { kind: "NoSuchObjectException", .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names of every partition of `database.table` (`dt=2026-11-25/hour=17`, escaped as
    /// Hive escapes directory names, which is how Landfall names them too).
    pub async fn get_partition_names(&self, database: &str, table: &str) -> Result<Vec<String>, MetastoreError> {
        let object = format!("{database}.{table}");
        let args = Struct::new().with(1, Value::string(database)).with(2, Value::string(table)).with(3, Value::I16(-1)); // all of them
        let throws: Throws = &[(1, "NoSuchObjectException"), (2, "MetaException")];
        match self.call("get_partition_names", &object, args, throws).await? {
            Some(Value::List { items, .. }) => Ok(items.iter().filter_map(Value::as_str).map(str::to_string).collect()),
            _ => Err(self.no_value("get_partition_names")),
        }
    }

    /// Replaces a partition's location and parameters (what compaction's switch to a new
    /// generation directory needs): `partition` as read by [`MetastoreClient::get_partition`],
    /// changed, and written back whole.
    pub async fn alter_partition(
        &self,
        database: &str,
        table: &str,
        partition: &Partition,
    ) -> Result<(), MetastoreError> {
        let object = format!("{database}.{table} partition {}", partition.values.join("/"));
        let args = Struct::new()
            .with(1, Value::string(database))
            .with(2, Value::string(table))
            .with(3, Value::Struct(partition.to_thrift()));
        self.call("alter_partition", &object, args, &[(1, "InvalidOperationException"), (2, "MetaException")]).await?;
        Ok(())
    }

    fn no_value(&self, call: &'static str) -> MetastoreError {
        MetastoreError::Protocol { addr: self.addr.clone(), call, detail: "a reply without the expected value".into() }
    }
}

/// [`MetastoreError::Incompatible`] for a fit that is not [`Fit::Same`].
fn incompatible(object: &str, fit: Fit) -> MetastoreError {
    let differences = match fit {
        Fit::Incompatible(differences) => differences,
        Fit::AddColumns(added) => {
            let added: Vec<String> = added.iter().map(|c| format!("{} {}", c.name, c.hive_type)).collect();
            vec![format!("the table lacks the columns ({}) right after it was created or altered", added.join(", "))]
        }
        Fit::Same => Vec::new(),
    };
    MetastoreError::Incompatible { table: object.to_string(), differences }
}

/// Seconds since the epoch, as the metastore's `i32` times want them.
fn now() -> i32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_host_and_port_or_say_what_is_wrong() {
        let t = Duration::from_secs(1);
        assert_eq!(MetastoreClient::new("thrift://127.0.0.1:9083", t).unwrap().addr(), "127.0.0.1:9083");
        assert_eq!(MetastoreClient::new("thrift://metastore.example", t).unwrap().addr(), "metastore.example:9083");
        assert_eq!(MetastoreClient::new("thrift://[::1]:9999", t).unwrap().addr(), "[::1]:9999");
        for (uri, why) in [
            ("http://127.0.0.1:9083", "scheme"),
            ("localhost:9083", "scheme"),
            ("thrift://127.0.0.1:9083/db", "only a host and a port"),
            ("not a uri", "relative URL"),
        ] {
            let err = MetastoreClient::new(uri, t).err().unwrap().to_string();
            assert!(err.contains(why) && err.contains("thrift://HOST:PORT"), "{uri}: {err}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_metastore_is_a_transient_error_that_names_the_address() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = MetastoreClient::new(&format!("thrift://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let err = client.get_database("default").await.unwrap_err();
        assert!(matches!(err, MetastoreError::Connect { .. }), "{err}");
        assert!(err.is_transient());
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_the_next_call_reconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..2 {
                held.push(listener.accept().await.unwrap().0); // accept, never answer
            }
            held
        });
        let client = MetastoreClient::new(&format!("thrift://127.0.0.1:{port}"), Duration::from_millis(200)).unwrap();
        for _ in 0..2 {
            let err = client.get_table("db", "t").await.unwrap_err();
            assert!(matches!(err, MetastoreError::Timeout { call: "get_table_req", .. }), "{err}");
            assert!(err.is_transient());
        }
        assert_eq!(accepted.await.unwrap().len(), 2, "a timed-out connection is not reused");
    }

    #[tokio::test]
    async fn a_non_thrift_server_is_a_protocol_error_a_person_must_fix() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        let client = MetastoreClient::new(&format!("thrift://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let err = client.get_database("default").await.unwrap_err();
        assert!(matches!(err, MetastoreError::Protocol { .. }), "{err}");
        assert!(!err.is_transient());
    }
}
