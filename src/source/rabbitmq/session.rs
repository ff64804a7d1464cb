//! One RabbitMQ connection: one channel per pipeline, the queue checked (or declared),
//! `basic.qos` set to `prefetch` per consumer, and [`QUEUE_CONSUMERS`] consumers on a queue (one
//! on a stream) whose deliveries reach the driver through an [`Inbox`] bounded in bytes, in
//! delivery-tag order. Acknowledgements are the source's business
//! ([`AmqpSession::ack_through`]): a queue's deliveries are acknowledged only once published.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties};

use super::drained::Depth;
use super::inbox::{ConsumeSpec, Inbox};
pub use crate::config::rabbitmq::QUEUE_CONSUMERS;
use crate::config::rabbitmq::{amqp_endpoint as endpoint, AuthMechanism, RabbitMqSourceConfig};
use crate::config::secret::redact_uri;

/// Why talking to RabbitMQ failed, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot connect to RabbitMQ at {endpoint}: {message}; check that the broker is up and reachable (source.rabbitmq.uri) and, for amqps://, that source.rabbitmq.tls trusts its certificate (ca_file)")]
    Connect { endpoint: String, message: String },
    #[error("RabbitMQ at {endpoint} refused the login: {message}; check the user, password and vhost in source.rabbitmq.uri")]
    Refused { endpoint: String, message: String },
    #[error("queue `{queue}` does not exist on {endpoint}: create it, fix source.rabbitmq.queue, or add `declare:` to create it")]
    MissingQueue { endpoint: String, queue: String },
    #[error("queue `{queue}` on {endpoint} exists with other settings than declared ({message}); align source.rabbitmq.queue_type and declare: with the queue, or remove declare:")]
    Mismatch { endpoint: String, queue: String, message: String },
    #[error("RabbitMQ at {endpoint} does not let this user {what} on queue `{queue}`: {message}; grant the user configure/read permissions on it in the vhost (rabbitmqctl set_permissions)")]
    Forbidden { endpoint: String, queue: String, what: &'static str, message: String },
    #[error("cannot read TLS file {path}: {message}; check source.rabbitmq.tls")]
    TlsFile { path: String, message: String },
    #[error("RabbitMQ at {endpoint}: {what}: {message}")]
    Channel { endpoint: String, what: &'static str, message: String },
}

impl AmqpError {
    /// Worth retrying in the same process (the broker may come back); the others need an
    /// operator, and stop the pipeline (the daemon restarts it after a pause).
    pub fn is_transient(&self) -> bool {
        matches!(self, AmqpError::Connect { .. } | AmqpError::Channel { .. })
    }
}

/// Where a stream consumer starts (`x-stream-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    /// Right after the last landed message.
    Offset(i64),
    First,
    Next,
}

/// A live connection with its consumers.
pub struct AmqpSession {
    connection: Connection,
    channel: Channel,
    /// What the consumers received and the driver has not decoded yet.
    inbox: Inbox,
    /// Consumers on the channel while consuming.
    consumers: u32,
    /// Messages ready in the queue when the consumer started (queues; streams report their
    /// own notion, unused).
    pub ready_at_start: u32,
    endpoint: String,
    queue: String,
}

fn read(path: &Option<String>) -> Result<Option<Vec<u8>>, AmqpError> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| AmqpError::TlsFile { path: p.clone(), message: e.to_string() }))
        .transpose()
}

fn tls_config(cfg: &RabbitMqSourceConfig) -> Result<OwnedTLSConfig, AmqpError> {
    let Some(tls) = &cfg.tls else { return Ok(OwnedTLSConfig::default()) };
    let ca = read(&tls.ca_file)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let identity = match (read(&tls.cert_file)?, read(&tls.key_file)?) {
        (Some(pem), Some(key)) => Some(OwnedIdentity::PKCS8 { pem, key }),
        _ => None,
    };
    Ok(OwnedTLSConfig { identity, cert_chain: ca })
}

/// The URI with the SASL mechanism the config asks for.
fn uri_with_auth(cfg: &RabbitMqSourceConfig) -> String {
    match cfg.auth {
        AuthMechanism::Plain => cfg.uri.clone(),
        AuthMechanism::External => {
            let sep = if cfg.uri.contains('?') { '&' } else { '?' };
            format!("{}{sep}auth_mechanism=external", cfg.uri)
        }
    }
}

/// Turns a lapin error into what to check, by AMQP reply code *and* the step it happened in
/// (a 403 at login is a bad password, later it is a missing permission; a 406 on declare is
/// a queue with other settings, later it is usually the broker's delivery ack timeout).
fn classify(endpoint: &str, queue: &str, what: &'static str, e: lapin::Error) -> AmqpError {
    let endpoint = endpoint.to_string();
    if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
        let message = amqp.get_message().as_str().to_string();
        match (amqp.get_id(), what) {
            (403 | 530, "connect") => return AmqpError::Refused { endpoint, message },
            (403, _) => return AmqpError::Forbidden { endpoint, queue: queue.to_string(), what, message },
            (404, "check the queue" | "declare the queue" | "start consuming") => {
                return AmqpError::MissingQueue { endpoint, queue: queue.to_string() }
            }
            (406, "declare the queue") => return AmqpError::Mismatch { endpoint, queue: queue.to_string(), message },
            (406, _) => {
                let message = format!(
                    "{message} (if it names a delivery acknowledgement timeout: raise the broker's consumer_timeout \
                     or lower roll.max_age)"
                );
                return AmqpError::Channel { endpoint, what, message };
            }
            _ => {}
        }
    }
    AmqpError::Channel { endpoint, what, message: e.to_string() }
}

impl AmqpSession {
    /// Connects, checks (or declares) the queue, sets the prefetch and starts consuming; a
    /// stream from `stream_start`. The consumers pause while deliveries not yet decoded hold more
    /// than `inbox_bytes` ([`super::inbox`]). Gives up on one attempt after 15 s.
    pub async fn open(
        pipeline: &str,
        cfg: &RabbitMqSourceConfig,
        stream_start: Option<StreamStart>,
        inbox_bytes: usize,
    ) -> Result<AmqpSession, AmqpError> {
        let endpoint = endpoint(&cfg.uri);
        let open = Self::open_inner(pipeline, cfg, stream_start, inbox_bytes, &endpoint);
        let opened = tokio::time::timeout(Duration::from_secs(15), open).await;
        opened.unwrap_or_else(|_| {
            Err(AmqpError::Connect { endpoint: endpoint.clone(), message: "no answer within 15 s".into() })
        })
    }

    async fn open_inner(
        pipeline: &str,
        cfg: &RabbitMqSourceConfig,
        stream_start: Option<StreamStart>,
        inbox_bytes: usize,
        endpoint: &str,
    ) -> Result<AmqpSession, AmqpError> {
        let queue = cfg.queue.as_str();
        let tls = tls_config(cfg)?;
        let props = ConnectionProperties::default().with_connection_name(format!("landfall {pipeline}").into());
        let runtime = lapin::runtime::default_runtime().map_err(|e| AmqpError::Connect {
            endpoint: endpoint.to_string(),
            message: format!("no async runtime: {e}"),
        })?;
        let connection = Connection::connect_with_config(&uri_with_auth(cfg), props, tls, runtime).await.map_err(
            |e| match classify(endpoint, queue, "connect", e) {
                AmqpError::Channel { endpoint, message, .. } => AmqpError::Connect { endpoint, message },
                other => other,
            },
        )?;
        let channel = connection.create_channel().await.map_err(|e| classify(endpoint, queue, "open a channel", e))?;
        let ready_at_start = Self::ensure_queue(&connection, &channel, cfg, endpoint).await?;
        channel
            .basic_qos(cfg.prefetch.min(65535) as u16, BasicQosOptions { global: false })
            .await
            .map_err(|e| classify(endpoint, queue, "set the prefetch", e))?;
        let mut args = FieldTable::default();
        if let Some(start) = stream_start {
            let value = match start {
                StreamStart::Offset(n) => AMQPValue::LongLongInt(n),
                StreamStart::First => AMQPValue::LongString(LongString::from("first")),
                StreamStart::Next => AMQPValue::LongString(LongString::from("next")),
            };
            args.insert("x-stream-offset".into(), value);
        }
        let count = if stream_start.is_some() { 1 } else { QUEUE_CONSUMERS };
        let spec = ConsumeSpec {
            pipeline: pipeline.to_string(),
            queue: queue.to_string(),
            count,
            args,
            stream: stream_start.is_some(),
            limit: inbox_bytes.max(1),
        };
        let inbox = super::inbox::start(channel.clone(), spec)
            .await
            .map_err(|e| classify(endpoint, queue, "start consuming", e))?;
        Ok(AmqpSession {
            connection,
            channel,
            inbox,
            consumers: count as u32,
            ready_at_start,
            endpoint: endpoint.to_string(),
            queue: queue.to_string(),
        })
    }

    /// Declares the queue (with its bindings) when `declare:` is set, else checks that it
    /// exists. A passive check that fails closes its channel, so it gets a channel of its own.
    /// Returns the messages ready in it.
    async fn ensure_queue(
        connection: &Connection,
        channel: &Channel,
        cfg: &RabbitMqSourceConfig,
        endpoint: &str,
    ) -> Result<u32, AmqpError> {
        let queue = cfg.queue.as_str();
        let Some(declare) = &cfg.declare else {
            return queue_depth(connection, endpoint, queue).await;
        };
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(cfg.queue_type.name())));
        if let Some(dlx) = &declare.dead_letter_exchange {
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from(dlx.as_str())));
        }
        if declare.single_active_consumer {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        let declared = channel
            .queue_declare(queue.into(), options, args)
            .await
            .map_err(|e| classify(endpoint, queue, "declare the queue", e))?;
        for b in &declare.bindings {
            channel
                .queue_bind(
                    queue.into(),
                    b.exchange.as_str().into(),
                    b.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| classify(endpoint, queue, "bind the queue", e))?;
        }
        Ok(declared.message_count())
    }

    /// The next delivery of the channel, in delivery-tag order across its consumers (so an
    /// acknowledgement with `multiple=true` never covers a delivery not yet handed out);
    /// `None` or an error when the session is over (the broker cancelled the consumers, the
    /// channel closed). Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<lapin::message::Delivery, String>> {
        self.inbox.next().await
    }

    /// The driver is done with deliveries taken from [`Self::next`] holding `bytes` of payload:
    /// they no longer count against the inbox's limit.
    pub fn done(&self, bytes: usize) {
        self.inbox.done(bytes);
    }

    /// Acknowledges every delivery up to and including `tag` (`multiple=true`).
    pub async fn ack_through(&self, tag: u64) -> Result<(), AmqpError> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| classify(&self.endpoint, &self.queue, "acknowledge", e))
    }

    /// Acknowledges one delivery alone (a dropped duplicate amid unpublished ones).
    pub async fn ack_one(&self, tag: u64) -> Result<(), AmqpError> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple: false })
            .await
            .map_err(|e| classify(&self.endpoint, &self.queue, "acknowledge", e))
    }

    /// Messages ready in the queue now and its consumers, asked on the consuming channel so
    /// that the reply comes after every delivery the broker sent before it (see `drained`).
    pub async fn depth(&self) -> Result<Depth, AmqpError> {
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let found = self
            .channel
            .queue_declare(self.queue.as_str().into(), options, FieldTable::default())
            .await
            .map_err(|e| classify(&self.endpoint, &self.queue, "check the queue", e))?;
        Ok(Depth { ready: found.message_count(), consumers: found.consumer_count() })
    }

    /// How many consumers this session runs on its channel.
    pub fn consumers(&self) -> u32 {
        self.consumers
    }

    /// The last offset of a stream now (`None`: empty). AMQP reports no stream length, so a
    /// second consumer starts at `last` (the stream's last chunk) and reads until quiet.
    pub async fn stream_end(&self) -> Result<Option<i64>, AmqpError> {
        use futures::StreamExt;
        let what = "find the end of the stream";
        let ch = self.connection.create_channel().await.map_err(|e| classify(&self.endpoint, &self.queue, what, e))?;
        ch.basic_qos(1000, BasicQosOptions { global: false })
            .await
            .map_err(|e| classify(&self.endpoint, &self.queue, what, e))?;
        let mut args = FieldTable::default();
        args.insert("x-stream-offset".into(), AMQPValue::LongString(LongString::from("last")));
        let options = BasicConsumeOptions { no_ack: false, ..BasicConsumeOptions::default() };
        let mut probe = ch
            .basic_consume(self.queue.as_str().into(), "landfall-stream-end".into(), options, args)
            .await
            .map_err(|e| classify(&self.endpoint, &self.queue, what, e))?;
        let mut end = None;
        // The first delivery may take a moment (the stream is opened); later ones are quick.
        // A stream written to without pause would keep the probe busy: stop after 10 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut wait = Duration::from_secs(5);
        while let Ok(Ok(Some(Ok(d)))) =
            tokio::time::timeout_at(deadline, tokio::time::timeout(wait, probe.next())).await
        {
            end = end.max(stream_offset(&d.properties));
            let _ = ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true }).await;
            wait = Duration::from_millis(300);
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(end)
    }

    /// Closes the connection; unacknowledged deliveries go back to the queue.
    pub async fn close(self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.connection.close(200, "landfall stopping".into())).await;
    }
}

/// A passive declare on a throwaway channel: the queue's ready count, or `MissingQueue`.
async fn queue_depth(connection: &Connection, endpoint: &str, queue: &str) -> Result<u32, AmqpError> {
    let probe = connection.create_channel().await.map_err(|e| classify(endpoint, queue, "open a channel", e))?;
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let found = probe.queue_declare(queue.into(), options, FieldTable::default()).await;
    let found = found.map_err(|e| classify(endpoint, queue, "check the queue", e))?;
    let _ = probe.close(200, "done".into()).await;
    Ok(found.message_count())
}

/// For `validate --connect`: connects and checks the queue without consuming.
pub async fn probe(pipeline: &str, cfg: &RabbitMqSourceConfig) -> Result<(), AmqpError> {
    let endpoint = endpoint(&cfg.uri);
    let run = async {
        let tls = tls_config(cfg)?;
        let props =
            ConnectionProperties::default().with_connection_name(format!("landfall validate {pipeline}").into());
        let runtime = lapin::runtime::default_runtime().map_err(|e| AmqpError::Connect {
            endpoint: endpoint.clone(),
            message: format!("no async runtime: {e}"),
        })?;
        let connection = Connection::connect_with_config(&uri_with_auth(cfg), props, tls, runtime).await.map_err(
            |e| match classify(&endpoint, &cfg.queue, "connect", e) {
                AmqpError::Channel { endpoint, message, .. } => AmqpError::Connect { endpoint, message },
                other => other,
            },
        )?;
        let checked = if cfg.declare.is_some() { Ok(0) } else { queue_depth(&connection, &endpoint, &cfg.queue).await };
        let _ = connection.close(200, "validated".into()).await;
        checked.map(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(15), run).await.unwrap_or_else(|_| {
        Err(AmqpError::Connect { endpoint: endpoint.clone(), message: "no answer within 15 s".into() })
    })
}

/// The `x-stream-offset` header RabbitMQ puts on every message it delivers from a stream.
pub fn stream_offset(props: &lapin::BasicProperties) -> Option<i64> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// The URI for logs.
pub fn describe(cfg: &RabbitMqSourceConfig) -> String {
    redact_uri(&cfg.uri).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_auth_is_asked_for_in_the_uri() {
        let mut cfg: RabbitMqSourceConfig =
            serde_norway::from_str("uri: amqps://h:5671/%2f\nqueue: q\nauth: external\n").unwrap();
        assert_eq!(uri_with_auth(&cfg), "amqps://h:5671/%2f?auth_mechanism=external");
        cfg.uri = "amqps://h/%2f?heartbeat=5".into();
        assert_eq!(uri_with_auth(&cfg), "amqps://h/%2f?heartbeat=5&auth_mechanism=external");
    }
}
