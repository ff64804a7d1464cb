//! The RabbitMQ source's settings (`source: { rabbitmq: {...} }`) and their offline checks.
//!
//! Two ways of consuming, chosen by `queue_type`: a classic or quorum **queue** is acknowledged
//! only after its messages are published (in a file or in quarantine) and redeliveries of
//! already-published `message_id`s are dropped; a **stream** is read by offset from Landfall's
//! own commit log, exactly once like a Kafka partition.

use std::fmt;

use serde::Deserialize;

use super::connectors::StartPosition;
use super::secret::redact_uri;
use super::units::HumanDuration;

/// A RabbitMQ queue or stream.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSourceConfig {
    /// `amqp://user:password@host:5672/vhost` or `amqps://…` for TLS; the default vhost `/`
    /// is written `%2f`. Credentials are required unless `auth: external`: Landfall never
    /// falls back to `guest` silently. The password is hidden when printed.
    pub uri: String,
    /// The queue (or stream) to consume.
    pub queue: String,
    /// `quorum` (default), `classic` or `stream`. Queues are acknowledged after publish and
    /// deduplicated by `message_id`; streams are read by offset and landed exactly once.
    #[serde(default)]
    pub queue_type: QueueType,
    /// Deliveries the broker may send ahead without an acknowledgement (`basic.qos`,
    /// 1 to 65535) per consumer; a queue gets two consumers. Its messages are acknowledged
    /// only once published, so Landfall commits when a third of the window (2 x prefetch) is
    /// buffered: that also bounds the rows of one commit.
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// How to authenticate: `plain` (user and password from `uri`) or `external` (the TLS
    /// client certificate in `tls`, RabbitMQ's `rabbitmq_auth_mechanism_ssl`).
    #[serde(default)]
    pub auth: AuthMechanism,
    /// TLS settings for `amqps://` URIs (a custom CA, a client certificate).
    #[serde(default)]
    pub tls: Option<AmqpTlsConfig>,
    /// Declare the queue if it does not exist. Without it the queue is only checked
    /// (passively), so a typo in `queue` fails instead of creating an unused queue.
    #[serde(default)]
    pub declare: Option<DeclareConfig>,
    /// How many recently published messages' `message_id`s are remembered: a redelivered
    /// message whose id is among them was already published and is dropped (and counted).
    /// Must cover the unacknowledged range, so at least twice `prefetch` (two consumers). Ids
    /// must be unique per message (not a business key).
    #[serde(default = "default_dedup_window")]
    pub dedup_window: usize,
    /// The broker's delivery acknowledgement timeout (`consumer_timeout` in rabbitmq.conf,
    /// 30 minutes by default): a delivery unacknowledged for longer closes the channel, so
    /// `roll.max_age` must stay well inside it.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// Where a stream with nothing landed yet starts: `earliest` (its first retained message)
    /// or `latest` (new messages only). Ignored for queues.
    #[serde(default = "default_start")]
    pub start: StartPosition,
}

impl fmt::Debug for RabbitMqSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqSourceConfig")
            .field("uri", &redact_uri(&self.uri))
            .field("queue", &self.queue)
            .field("queue_type", &self.queue_type)
            .field("prefetch", &self.prefetch)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("declare", &self.declare)
            .field("dedup_window", &self.dedup_window)
            .field("ack_timeout", &self.ack_timeout)
            .field("start", &self.start)
            .finish()
    }
}

impl RabbitMqSourceConfig {
    pub fn is_stream(&self) -> bool {
        self.queue_type == QueueType::Stream
    }

    /// Deliveries that can be unacknowledged at once: `prefetch` per consumer.
    pub fn window(&self) -> u64 {
        let consumers = if self.is_stream() { 1 } else { crate::source::rabbitmq::QUEUE_CONSUMERS as u64 };
        u64::from(self.prefetch) * consumers
    }

    /// Messages after which a queue's open range is committed: a third of the window, so two
    /// commits can be in flight (one closing its files, one being recorded) while the last
    /// third keeps arriving.
    pub fn commit_every(&self) -> u64 {
        (self.window() / 3).max(1)
    }
}

/// AMQP's maximum. Deliveries stay unacknowledged until their commit is published (an HDFS
/// commit takes about a second), so the prefetch sets both the throughput and the rows per
/// commit.
fn default_prefetch() -> u32 {
    65535
}

/// Covers the default window (2 x 65535) with room to spare; about 16 bytes per id in memory.
fn default_dedup_window() -> usize {
    200_000
}

/// RabbitMQ's own `consumer_timeout` default.
fn default_ack_timeout() -> HumanDuration {
    HumanDuration::from_secs(30 * 60)
}

fn default_start() -> StartPosition {
    StartPosition::Earliest
}

/// The queue's type (RabbitMQ's `x-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    /// Replicated, durable: RabbitMQ's recommended queue type.
    #[default]
    Quorum,
    Classic,
    /// An append-only log read by offset.
    Stream,
}

impl QueueType {
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
            QueueType::Stream => "stream",
        }
    }
}

/// SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMechanism {
    #[default]
    Plain,
    External,
}

/// TLS for `amqps://`. Files are PEM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpTlsConfig {
    /// CA certificate(s) the broker's certificate must chain to, instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate, for brokers that verify peers or for `auth: external`.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// The client certificate's private key (PKCS#8 PEM).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// How to declare a missing queue. Declaring an existing queue with other settings fails
/// (RabbitMQ's `PRECONDITION_FAILED`), so this never changes a queue in use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareConfig {
    /// Bind the queue to these exchanges (which must exist).
    #[serde(default)]
    pub bindings: Vec<BindingConfig>,
    /// Exchange that receives messages the queue rejects or expires (`x-dead-letter-exchange`).
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
}

/// One queue binding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    pub exchange: String,
    /// Routing key (topic exchanges accept `#` and `*` patterns).
    #[serde(default)]
    pub routing_key: String,
}

/// Whether `uri` carries a user name (`scheme://user[:password]@host`).
pub fn uri_has_credentials(uri: &str) -> bool {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit_once('@').is_some_and(|(user, _)| !user.is_empty() && !user.starts_with(':'))
}

/// Offline problems of a RabbitMQ source, as (key path below `source.rabbitmq`, message).
/// `max_age` and `max_rows` come from the pipeline's `roll:` section.
pub fn check(cfg: &RabbitMqSourceConfig, max_age: std::time::Duration, max_rows: u64, max_rows_is_default: bool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let scheme = cfg.uri.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("amqp") | Some("amqps") => {}
        _ => out.push(("uri", format!("uri `{}` must start with `amqp://` or `amqps://`", redact_uri(&cfg.uri)))),
    }
    let tls = scheme == Some("amqps");
    if cfg.auth == AuthMechanism::Plain && !uri_has_credentials(&cfg.uri) {
        out.push((
            "uri",
            format!(
                "uri `{}` has no credentials: write `amqp://USER:PASSWORD@host:5672/vhost` (e.g. with `${{RABBITMQ_PASSWORD}}`), \
                 or set `auth: external` with a TLS client certificate; Landfall does not fall back to guest",
                redact_uri(&cfg.uri)
            ),
        ));
    }
    if cfg.auth == AuthMechanism::External {
        if !tls {
            out.push(("auth", "auth: external needs an `amqps://` uri (the client certificate is the credential)".into()));
        }
        if cfg.tls.as_ref().is_none_or(|t| t.cert_file.is_none() || t.key_file.is_none()) {
            out.push(("auth", "auth: external needs `tls.cert_file` and `tls.key_file`".into()));
        }
    }
    if let Some(t) = &cfg.tls {
        if !tls {
            out.push(("tls", "tls applies only to `amqps://` uris; change the scheme or remove `tls`".into()));
        }
        if t.cert_file.is_some() != t.key_file.is_some() {
            out.push(("tls", "set both `cert_file` and `key_file`, or neither".into()));
        }
    }
    if cfg.queue.is_empty() || cfg.queue.len() > 255 {
        out.push(("queue", "queue must be 1 to 255 bytes long".into()));
    } else if cfg.queue.starts_with("amq.") {
        out.push(("queue", format!("queue `{}`: names starting with `amq.` are reserved by RabbitMQ", cfg.queue)));
    }
    if cfg.prefetch == 0 || cfg.prefetch > 65535 {
        out.push((
            "prefetch",
            format!(
                "prefetch must be between 1 and 65535, got {}: 0 would mean unlimited deliveries, and acknowledgements wait for publishing",
                cfg.prefetch
            ),
        ));
    } else if !cfg.is_stream() && !max_rows_is_default && max_rows > cfg.commit_every() {
        out.push((
            "prefetch",
            format!(
                "prefetch {} is too small for roll.max_rows {max_rows}: a queue's messages are acknowledged only after publishing, \
                 so Landfall commits every {} messages (a third of 2 x prefetch); raise prefetch to at least {} (max 65535) or lower roll.max_rows",
                cfg.prefetch,
                cfg.commit_every(),
                max_rows.saturating_mul(3).div_ceil(2).min(65535)
            ),
        ));
    }
    if !cfg.is_stream() && (cfg.dedup_window as u64) < cfg.window() {
        out.push((
            "dedup_window",
            format!(
                "dedup_window {} is smaller than the unacknowledged window {} (2 consumers x prefetch {}): redeliveries after a crash can span all of it",
                cfg.dedup_window,
                cfg.window(),
                cfg.prefetch
            ),
        ));
    }
    let ack = cfg.ack_timeout.get();
    if ack.is_zero() {
        out.push(("ack_timeout", "ack_timeout must be greater than 0 (the broker's consumer_timeout)".into()));
    } else if !cfg.is_stream() && max_age > ack / 2 {
        out.push((
            "ack_timeout",
            format!(
                "roll.max_age {}s could exceed the broker's delivery acknowledgement timeout ({}s, ack_timeout): \
                 messages stay unacknowledged while their file is open, and the broker closes the channel at the timeout; \
                 keep roll.max_age at most half of it",
                max_age.as_secs(),
                ack.as_secs()
            ),
        ));
    }
    if let Some(d) = &cfg.declare {
        for b in &d.bindings {
            if b.exchange.is_empty() {
                out.push(("declare", "a binding needs an exchange (the default exchange cannot be bound)".into()));
            }
        }
        if cfg.is_stream() && d.dead_letter_exchange.is_some() {
            out.push(("declare", "streams do not support dead-lettering; remove dead_letter_exchange".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(yaml: &str) -> RabbitMqSourceConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn keys(c: &RabbitMqSourceConfig, max_age_s: u64, max_rows: u64, default_rows: bool) -> Vec<&'static str> {
        check(c, Duration::from_secs(max_age_s), max_rows, default_rows).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn credentials_are_detected_in_the_authority_only() {
        assert!(uri_has_credentials("amqp://u:p@h:5672/%2f"));
        assert!(uri_has_credentials("amqps://u@h"));
        assert!(!uri_has_credentials("amqp://h:5672/%2f"));
        assert!(!uri_has_credentials("amqp://h:5672/v@host"), "an @ in the vhost is not userinfo");
        assert!(!uri_has_credentials("amqp://:p@h"));
    }

    #[test]
    fn a_good_config_has_no_problems_and_defaults_apply() {
        let c = cfg("uri: amqp://u:p@h/%2f\nqueue: orders\n");
        assert_eq!((c.prefetch, c.queue_type, c.dedup_window), (65535, QueueType::Quorum, 200_000));
        assert_eq!((c.window(), c.commit_every()), (131_070, 43_690));
        assert!(keys(&c, 60, 1_000_000, true).is_empty());
    }

    #[test]
    fn each_rule_names_its_key() {
        assert_eq!(keys(&cfg("uri: amqp://h/%2f\nqueue: q\n"), 60, 1, true), ["uri"]);
        assert_eq!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\nprefetch: 0\n"), 60, 1, true), ["prefetch"]);
        assert_eq!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\nprefetch: 100\n"), 60, 1000, false), ["prefetch"]);
        assert!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\nprefetch: 300\n"), 60, 200, false).is_empty());
        assert_eq!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\nack_timeout: 10m\n"), 600, 1, true), ["ack_timeout"]);
        assert!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\nack_timeout: 10m\nqueue_type: stream\n"), 600, 1, true).is_empty());
        assert_eq!(keys(&cfg("uri: amqp://u:p@h\nqueue: q\ndedup_window: 10\n"), 60, 1, true), ["dedup_window"]);
        assert_eq!(keys(&cfg("uri: amqp://u:p@h\nqueue: amq.x\n"), 60, 1, true), ["queue"]);
        assert_eq!(keys(&cfg("uri: http://u:p@h\nqueue: q\n"), 60, 1, true), ["uri"]);
        assert_eq!(
            keys(&cfg("uri: amqp://h\nqueue: q\nauth: external\ntls: {ca_file: ca.pem}\n"), 60, 1, true),
            ["auth", "auth", "tls"]
        );
        let external = "uri: amqps://h\nqueue: q\nauth: external\ntls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}\n";
        assert!(keys(&cfg(external), 60, 1, true).is_empty());
    }

    #[test]
    fn the_password_is_not_printed() {
        let c = cfg("uri: amqp://u:s3cret@h/%2f\nqueue: q\n");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
