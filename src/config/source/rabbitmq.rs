//! The RabbitMQ source's settings (`source: { rabbitmq: {...} }`) and their offline checks.
//!
//! Two ways of consuming, chosen by `queue_type`: a classic or quorum **queue** is acknowledged
//! only after its messages are published (in a file or in quarantine) and redeliveries of
//! already-published `message_id`s are dropped; a **stream** is read by offset from Landfall's
//! own commit log, exactly once like a Kafka partition.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::{OnPositionLost, StartPosition};
use crate::config::pipeline::RollConfig;
use crate::config::secret::redact_uri;
use crate::config::units::HumanDuration;
use crate::config::validate::{at, Findings};

/// Consumers per queue session, on one channel. AMQP caps `prefetch` at 65535 per consumer,
/// and a queue's deliveries stay unacknowledged until published (about half a second per commit on
/// HDFS): with one consumer the broker stops delivering while a commit is recorded. Two double
/// the window. A stream delivers everything to every consumer, so it gets one.
pub const QUEUE_CONSUMERS: usize = 2;

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
    /// Most deliveries the broker may send ahead without an acknowledgement (`basic.qos`,
    /// 1 to 65535) per consumer; a queue gets two consumers. Its messages are acknowledged
    /// only once published, so Landfall commits when a third of the window (2 x prefetch) is
    /// buffered: that also bounds the rows of one commit. An upper bound: deliveries received
    /// and not yet decoded may hold a quarter of `roll.max_buffered_bytes`, past which the
    /// consumers are cancelled until half of that is free (large messages, a stalled store).
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
    /// Streams: what to do when the committed position is past the stream's end (the stream
    /// was deleted and recreated): `fail` (the pipeline stops, naming the committed position
    /// and the stream's end; the daemon retries it with backoff), `earliest` (land the stream
    /// from its first retained message) or `latest` (only what arrives from now on). A jump
    /// is recorded in the commit log, logged at `error` and counted in
    /// `landfall_position_jumps_total`. Queues have no position to lose: ignored (warned).
    #[serde(default)]
    pub on_position_lost: OnPositionLost,
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
            .field("on_position_lost", &self.on_position_lost)
            .finish()
    }
}

impl RabbitMqSourceConfig {
    pub fn is_stream(&self) -> bool {
        self.queue_type == QueueType::Stream
    }

    /// Deliveries that can be unacknowledged at once: `prefetch` per consumer.
    pub fn window(&self) -> u64 {
        let consumers = if self.is_stream() { 1 } else { QUEUE_CONSUMERS as u64 };
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
/// commit takes about half a second), so the prefetch sets both the throughput and the rows per
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
    /// Declare the queue with `x-single-active-consumer`: the broker delivers to one consumer
    /// at a time and activates a waiting one when it goes, so a second instance is a standby
    /// that takes over in seconds (strict order, no scale-out; docs/scaling.md). Classic and
    /// quorum queues only.
    #[serde(default)]
    pub single_active_consumer: bool,
}

/// One queue binding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// The exchange to bind the queue to; it must exist (Landfall does not declare it).
    pub exchange: String,
    /// Routing key (topic exchanges accept `#` and `*` patterns).
    #[serde(default)]
    pub routing_key: String,
}

/// Whether `uri` carries a user name (`scheme://user[:password]@host`). The URI is read by
/// the `url` crate, as lapin reads it, so an `@` in the password or the vhost is no userinfo
/// boundary; an unparsable URI has none.
pub fn uri_has_credentials(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|url| !url.username().is_empty())
}

/// `host:port/vhost` of a RabbitMQ URI, for messages: never the credentials, nor the query
/// (`amqp://u:secret@broker:5672/%2f?heartbeat=10` → `broker:5672/%2f`, `amqps://broker` →
/// `broker`). Parsed like lapin parses it (the `url` crate), so `@` in a password or vhost
/// cannot leak or cut the host. A URI that does not parse (validation refuses those) comes back
/// with everything before its last `@` hidden.
pub fn amqp_endpoint(uri: &str) -> String {
    let Ok(url) = Url::parse(uri) else {
        return redact_uri(uri).into_owned();
    };
    let mut endpoint = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        endpoint.push_str(&format!(":{port}"));
    }
    endpoint.push_str(url.path());
    endpoint
}

/// Offline checks of a RabbitMQ source, at key paths below `source.rabbitmq`. `roll` is the
/// pipeline's roll section; `max_rows_is_default` tells an explicit `roll.max_rows` from the
/// default one, which adapts to the prefetch without a word.
///
/// Errors are for settings that cannot work; a setting that works but differently than it
/// reads (files smaller than `roll.max_rows`, little margin before the broker's ack timeout)
/// is a warning.
pub(crate) fn check(cfg: &RabbitMqSourceConfig, roll: &RollConfig, max_rows_is_default: bool, out: &mut Findings) {
    let path = |key: &str| at(&["source", "rabbitmq", key]);
    let scheme = cfg.uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let url = match scheme.as_deref() {
        Some("amqp" | "amqps") => match Url::parse(&cfg.uri) {
            Ok(url) => Some(url),
            Err(e) => {
                out.error(
                    path("uri"),
                    format!(
                        "uri `{}` is not a valid URI ({e}); write `amqp://USER:PASSWORD@host:5672/vhost` and \
                         percent-encode `/`, `?` and `#` in the user or password (`/` is `%2F`) and `:` in the user",
                        redact_uri(&cfg.uri)
                    ),
                );
                None
            }
        },
        _ => {
            out.error(path("uri"), format!("uri `{}` must start with `amqp://` or `amqps://`", redact_uri(&cfg.uri)));
            None
        }
    };
    let tls = scheme.as_deref() == Some("amqps");
    if !cfg.is_stream() && cfg.on_position_lost != OnPositionLost::Fail {
        out.warn(
            path("on_position_lost"),
            format!(
                "on_position_lost: {} has no effect on a {} queue: a queue has no position to lose (only streams, which \
                 are read by offset, do); remove it to silence this",
                cfg.on_position_lost.as_str(),
                cfg.queue_type.name()
            ),
        );
    }
    if cfg.auth == AuthMechanism::Plain && url.as_ref().is_some_and(|url| url.username().is_empty()) {
        out.error(
            path("uri"),
            format!(
                "uri `{}` has no credentials: write `amqp://USER:PASSWORD@host:5672/vhost` (e.g. with `${{RABBITMQ_PASSWORD}}`), \
                 or set `auth: external` with a TLS client certificate; Landfall does not fall back to guest",
                redact_uri(&cfg.uri)
            ),
        );
    }
    if cfg.auth == AuthMechanism::External {
        if !tls {
            out.error(
                path("auth"),
                "auth: external needs an `amqps://` uri (the client certificate is the credential)".into(),
            );
        }
        if cfg.tls.as_ref().is_none_or(|t| t.cert_file.is_none() || t.key_file.is_none()) {
            out.error(path("auth"), "auth: external needs `tls.cert_file` and `tls.key_file`".into());
        }
    }
    if let Some(t) = &cfg.tls {
        // An error, not a warning: the connection would silently go out in plain text.
        if !tls {
            out.error(path("tls"), "tls applies only to `amqps://` uris; change the scheme or remove `tls`".into());
        }
        if t.cert_file.is_some() != t.key_file.is_some() {
            out.error(path("tls"), "set both `cert_file` and `key_file`, or neither".into());
        }
    }
    if cfg.queue.is_empty() || cfg.queue.len() > 255 {
        out.error(path("queue"), "queue must be 1 to 255 bytes long".into());
    } else if cfg.queue.starts_with("amq.") {
        out.error(path("queue"), format!("queue `{}`: names starting with `amq.` are reserved by RabbitMQ", cfg.queue));
    }
    if cfg.prefetch == 0 || cfg.prefetch > 65535 {
        out.error(
            path("prefetch"),
            format!(
                "prefetch must be between 1 and 65535, got {}: 0 would mean unlimited deliveries, and acknowledgements wait for publishing",
                cfg.prefetch
            ),
        );
    } else if !cfg.is_stream() && !max_rows_is_default && roll.max_rows > cfg.commit_every() {
        out.warn(
            path("prefetch"),
            format!(
                "files will hold at most {every} rows, not roll.max_rows {max_rows}: a queue's messages are acknowledged only \
                 after publishing, so Landfall commits every {every} messages (a third of {QUEUE_CONSUMERS} consumers x prefetch {prefetch}); \
                 raise prefetch to at least {needed} (max 65535) or lower roll.max_rows to {every} to silence this",
                every = cfg.commit_every(),
                max_rows = roll.max_rows,
                prefetch = cfg.prefetch,
                needed = roll.max_rows.saturating_mul(3).div_ceil(QUEUE_CONSUMERS as u64).min(65535),
            ),
        );
    }
    // An error: duplicates would land after a reconnect, which breaks the queue's guarantee.
    if !cfg.is_stream() && (cfg.dedup_window as u64) < cfg.window() {
        out.error(
            path("dedup_window"),
            format!(
                "dedup_window {} is smaller than the unacknowledged window {} ({QUEUE_CONSUMERS} consumers x prefetch {}): \
                 redeliveries after a crash can span all of it, and the ones past the window would land twice; raise it to at least {}",
                cfg.dedup_window,
                cfg.window(),
                cfg.prefetch,
                cfg.window()
            ),
        );
    }
    let ack = cfg.ack_timeout.get();
    let max_age = roll.max_age.get();
    if ack.is_zero() {
        out.error(path("ack_timeout"), "ack_timeout must be greater than 0 (the broker's consumer_timeout)".into());
    } else if !cfg.is_stream() && max_age >= ack {
        out.error(
            path("ack_timeout"),
            format!(
                "roll.max_age {}s is not shorter than the broker's delivery acknowledgement timeout ({}s, ack_timeout): \
                 messages stay unacknowledged while their file is open, so the broker would close the channel before a \
                 quiet queue's file is published, again and again; keep roll.max_age at most half of it",
                max_age.as_secs(),
                ack.as_secs()
            ),
        );
    } else if !cfg.is_stream() && max_age > ack / 2 {
        out.warn(
            path("ack_timeout"),
            format!(
                "roll.max_age {}s could exceed the broker's delivery acknowledgement timeout ({}s, ack_timeout) when a commit \
                 is slow: messages stay unacknowledged while their file is open and until it is published, and at the timeout \
                 the broker closes the channel and redelivers them; keep roll.max_age at most half of it ({}s)",
                max_age.as_secs(),
                ack.as_secs(),
                (ack / 2).as_secs()
            ),
        );
    }
    if let Some(d) = &cfg.declare {
        for b in &d.bindings {
            if b.exchange.is_empty() {
                out.error(path("declare"), "a binding needs an exchange (the default exchange cannot be bound)".into());
            }
        }
        if cfg.is_stream() && d.dead_letter_exchange.is_some() {
            out.error(path("declare"), "streams do not support dead-lettering; remove dead_letter_exchange".into());
        }
        if cfg.is_stream() && d.single_active_consumer {
            out.error(
                path("declare"),
                "streams offer single active consumer only over RabbitMQ's stream protocol, not AMQP; remove \
                 single_active_consumer (readers of a stream do not compete: each reads every message)"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::HumanDuration;

    fn cfg(yaml: &str) -> RabbitMqSourceConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn roll(max_age_s: u64, max_rows: u64) -> RollConfig {
        RollConfig { max_age: HumanDuration::from_secs(max_age_s), max_rows, ..RollConfig::default() }
    }

    /// (error keys, warning keys) below `source.rabbitmq` for a config and a roll section.
    fn keys(c: &RabbitMqSourceConfig, max_age_s: u64, max_rows: u64, default_rows: bool) -> (Vec<String>, Vec<String>) {
        let mut out = Findings::default();
        check(c, &roll(max_age_s, max_rows), default_rows, &mut out);
        let (errors, warnings) = out.keys();
        let short =
            |keys: Vec<String>| keys.iter().map(|k| k.trim_start_matches("source.rabbitmq.").to_string()).collect();
        (short(errors), short(warnings))
    }

    fn errors(c: &RabbitMqSourceConfig, max_age_s: u64, max_rows: u64, default_rows: bool) -> Vec<String> {
        keys(c, max_age_s, max_rows, default_rows).0
    }

    #[test]
    fn credentials_are_detected_in_the_authority_only() {
        assert!(uri_has_credentials("amqp://u:p@h:5672/%2f"));
        assert!(uri_has_credentials("amqps://u@h"));
        assert!(!uri_has_credentials("amqp://h:5672/%2f"));
        assert!(!uri_has_credentials("amqp://h:5672/v@host"), "an @ in the vhost is not userinfo");
        assert!(!uri_has_credentials("amqp://:p@h"));
        assert!(uri_has_credentials("amqp://u:p@ss@h/%2f"), "an @ in the password is");
    }

    #[test]
    fn the_endpoint_never_shows_credentials() {
        // The same outputs as `source::rabbitmq::endpoint`'s tests.
        assert_eq!(amqp_endpoint("amqp://u:secret@broker:5672/%2f?heartbeat=10"), "broker:5672/%2f");
        assert_eq!(amqp_endpoint("amqps://broker"), "broker");
        // `@` in the password, raw or percent-encoded, and an encoded `/`.
        assert_eq!(amqp_endpoint("amqp://u:p@ss@broker:5672/%2f"), "broker:5672/%2f");
        assert_eq!(amqp_endpoint("amqp://u:p%40ss@broker:5672/%2f"), "broker:5672/%2f");
        assert_eq!(amqp_endpoint("amqp://u:p%2Fss@broker:5672/orders"), "broker:5672/orders");
        // `@` in the vhost is part of the vhost, not userinfo.
        assert_eq!(amqp_endpoint("amqp://u:p@broker:5672/team@eu"), "broker:5672/team@eu");
        assert_eq!(amqp_endpoint("amqp://broker/team@eu"), "broker/team@eu");
        assert_eq!(amqp_endpoint("amqp://u:p@[::1]:5672/%2f"), "[::1]:5672/%2f");
        // A raw `/` in the password does not parse (lapin refuses it too): nothing leaks.
        let broken = amqp_endpoint("amqp://u:pa/ss@broker:5672/%2f");
        assert!(!broken.contains("pa/ss") && !broken.contains("ss@"), "{broken}");
    }

    #[test]
    fn single_active_consumer_is_for_classic_and_quorum_queues() {
        for queue_type in ["quorum", "classic"] {
            let c = cfg(&format!(
                "uri: amqp://u:p@h\nqueue: q\nqueue_type: {queue_type}\ndeclare: {{ single_active_consumer: true }}\n"
            ));
            assert!(c.declare.as_ref().unwrap().single_active_consumer);
            assert_eq!(errors(&c, 60, 1, true), Vec::<String>::new(), "{queue_type}");
        }
        let stream =
            cfg("uri: amqp://u:p@h\nqueue: q\nqueue_type: stream\ndeclare: { single_active_consumer: true }\n");
        assert_eq!(errors(&stream, 60, 1, true), vec!["declare".to_string()]);
        assert!(!cfg("uri: amqp://u:p@h\nqueue: q\ndeclare: {}\n").declare.unwrap().single_active_consumer);
    }

    #[test]
    fn a_good_config_has_no_problems_and_defaults_apply() {
        let c = cfg("uri: amqp://u:p@h/%2f\nqueue: orders\n");
        assert_eq!((c.prefetch, c.queue_type, c.dedup_window), (65535, QueueType::Quorum, 200_000));
        assert_eq!((c.window(), c.commit_every()), (131_070, 43_690));
        assert_eq!(keys(&c, 60, 1_000_000, true), (vec![], vec![]));
        for uri in
            ["amqp://u:p@ss@h:5672/%2f", "amqp://u:p%40ss@h/%2f", "amqp://u:p%2Fss@h/%2f", "amqp://u:p@h/team@eu"]
        {
            let c = cfg(&format!("uri: \"{uri}\"\nqueue: q\n"));
            assert_eq!(keys(&c, 60, 1, true), (vec![], vec![]), "{uri}");
        }
    }

    #[test]
    fn each_rule_names_its_key() {
        assert_eq!(errors(&cfg("uri: amqp://h/%2f\nqueue: q\n"), 60, 1, true), ["uri"]);
        assert_eq!(errors(&cfg("uri: amqp://u:p@h\nqueue: q\nprefetch: 0\n"), 60, 1, true), ["prefetch"]);
        assert_eq!(errors(&cfg("uri: amqp://u:p@h\nqueue: q\nack_timeout: 10m\n"), 600, 1, true), ["ack_timeout"]);
        assert!(errors(&cfg("uri: amqp://u:p@h\nqueue: q\nack_timeout: 10m\nqueue_type: stream\n"), 600, 1, true)
            .is_empty());
        assert_eq!(errors(&cfg("uri: amqp://u:p@h\nqueue: q\ndedup_window: 10\n"), 60, 1, true), ["dedup_window"]);
        assert_eq!(errors(&cfg("uri: amqp://u:p@h\nqueue: amq.x\n"), 60, 1, true), ["queue"]);
        assert_eq!(errors(&cfg("uri: http://u:p@h\nqueue: q\n"), 60, 1, true), ["uri"]);
        assert_eq!(
            errors(&cfg("uri: amqp://h\nqueue: q\nauth: external\ntls: {ca_file: ca.pem}\n"), 60, 1, true),
            ["auth", "auth", "tls"]
        );
        let external =
            "uri: amqps://h\nqueue: q\nauth: external\ntls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}\n";
        assert_eq!(keys(&cfg(external), 60, 1, true), (vec![], vec![]));
    }

    #[test]
    fn a_uri_that_does_not_parse_says_what_to_encode_and_hides_the_password() {
        let c = cfg("uri: \"amqp://u:pa/ss@h:5672/%2f\"\nqueue: q\n");
        let mut out = Findings::default();
        check(&c, &roll(60, 1), true, &mut out);
        let messages: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("is not a valid URI") && messages[0].contains("`%2F`"), "{}", messages[0]);
        assert!(!messages[0].contains("pa/ss"), "{}", messages[0]);
    }

    #[test]
    fn surprising_but_working_settings_are_warnings() {
        // Files smaller than an explicit max_rows: a warning naming the real size.
        let small = cfg("uri: amqp://u:p@h\nqueue: q\nprefetch: 5000\n");
        assert_eq!(keys(&small, 60, 4000, false), (vec![], vec!["prefetch".to_string()]));
        let mut out = Findings::default();
        check(&small, &roll(60, 4000), false, &mut out);
        let message = &out.warnings[0].message;
        assert!(message.contains("at most 3333 rows") && message.contains("at least 6000"), "{message}");
        assert_eq!(keys(&small, 60, 4000, true), (vec![], vec![]), "the default max_rows adapts silently");
        assert_eq!(keys(&small, 60, 3333, false), (vec![], vec![]));
        // Little margin before the ack timeout: a warning; past it: an error.
        let ack = cfg("uri: amqp://u:p@h\nqueue: q\nack_timeout: 90s\n");
        assert_eq!(keys(&ack, 60, 1, true), (vec![], vec!["ack_timeout".to_string()]));
        assert_eq!(keys(&ack, 45, 1, true), (vec![], vec![]));
        assert_eq!(keys(&ack, 90, 1, true), (vec!["ack_timeout".to_string()], vec![]));
        // A stream setting on a queue does nothing: said, not refused.
        let lost = cfg("uri: amqp://u:p@h\nqueue: q\non_position_lost: earliest\n");
        assert_eq!(keys(&lost, 60, 1, true), (vec![], vec!["on_position_lost".to_string()]));
        let stream = cfg("uri: amqp://u:p@h\nqueue: q\nqueue_type: stream\non_position_lost: latest\n");
        assert_eq!(keys(&stream, 60, 1, true), (vec![], vec![]));
    }

    #[test]
    fn the_password_is_not_printed() {
        let c = cfg("uri: amqp://u:s3cret@h/%2f\nqueue: q\n");
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = cfg("uri: \"amqp://u:s3c@ret@h/%2f\"\nqueue: q\n");
        assert!(!format!("{c:?}").contains("s3c"), "{c:?}");
    }
}
