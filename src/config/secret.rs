//! Keeping passwords out of logs: a [`Secret`] newtype, the rule that decides which option
//! keys hold secrets, and [`Redactor`] for any text printed about a config (URIs with
//! userinfo, values that came from secret-looking environment variables).

use std::borrow::Cow;
use std::fmt;

/// What every redacted value prints as.
pub const REDACTED: &str = "***";

/// A value that must never be printed. `Debug` and `Display` show `***`; call
/// [`Secret::expose`] only where the value is handed to the client library.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The real value, for the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{REDACTED}\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Fragments that mark a client option (librdkafka, Hadoop) as holding a secret. Matched
/// case-insensitively anywhere in the key, so `sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, `ssl_keystore_password` are all caught;
/// over-redacting a harmless key costs nothing.
const SECRET_KEY_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "private",
    "key.pem",
    "keystore.key",
    "sasl.jaas",
    "sasl.oauthbearer.config",
    "access.key",
    "auth",
];

/// Whether an option key (or an environment variable name) names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('_', ".");
    SECRET_KEY_FRAGMENTS.iter().any(|fragment| key.contains(fragment)) || key.split('.').any(|part| part == "key")
}

/// Hides the userinfo of a URI: `hdfs://alice:pw@nn:9000/x` → `hdfs://***@nn:9000/x`.
/// The whole userinfo goes, since a bare token (`https://TOKEN@host`) is as secret as a
/// password. Text that is not a URI with userinfo is returned unchanged; text before the
/// scheme (a quote or bracket in a message) is kept.
///
/// Whether there is userinfo is decided by the `url` crate, the parser lapin and hdfs-native
/// use, so an `@` in a password (`u:p@ss@host`) or in a path (`host/team@eu`) is read as
/// they read it. The userinfo then ends at the last `@` before the first `/`, `?` or `#`
/// after `://` (the rule `url` applies), and only it is replaced, so the rest of the text is
/// not re-encoded. A URI `url` cannot parse but that has an `@` (a raw `/` in a password, say)
/// is hidden up to its last `@`: it cannot be told where its userinfo ends.
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let Some(separator) = uri.find("://") else {
        return Cow::Borrowed(uri);
    };
    let scheme_start = uri[..separator]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |i| i + 1);
    let authority_start = separator + 3;
    let rest = &uri[authority_start..];
    let userinfo_end = match url::Url::parse(&uri[scheme_start..]) {
        Ok(url) if url.username().is_empty() && url.password().is_none() => None,
        Ok(_) => {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            authority.rfind('@')
        }
        Err(_) => rest.rfind('@'),
    };
    match userinfo_end {
        Some(at) => Cow::Owned(format!("{}{REDACTED}{}", &uri[..authority_start], &rest[at..])),
        None => Cow::Borrowed(uri),
    }
}

/// Redacts known secret values and URI userinfo from free text such as error messages, which
/// may quote a value (serde does: "invalid type: string \"hunter2\"").
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a value to hide wherever it appears. Very short values are ignored: hiding every
    /// `1` or `a` in a message would make it unreadable and protects nothing.
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() >= 3 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether `value` contains a registered secret.
    pub fn contains_secret(&self, value: &str) -> bool {
        self.secrets.iter().any(|s| value.contains(s.as_str()))
    }

    /// `text` with every registered secret replaced by `***` and URI userinfo hidden.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        // Landfall's own messages show the URI shape with this placeholder userinfo; it is
        // the one userinfo that is not a secret.
        out.split(' ')
            .map(
                |word| {
                    if word.contains("://USER:PASSWORD@") {
                        word.to_string()
                    } else {
                        redact_uri(word).into_owned()
                    }
                },
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "ssl.keystore.password",
            "sasl.jaas.config",
            "KAFKA_PASSWORD",
            "HDFS_TOKEN",
            "ssl.key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["client.id", "security.protocol", "sasl.mechanism", "sasl.username", "BROKERS"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn uri_userinfo_is_hidden() {
        assert_eq!(redact_uri("hdfs://alice:pw@nn:9000/x"), "hdfs://***@nn:9000/x");
        assert_eq!(redact_uri("https://TOKEN@host/p@th"), "https://***@host/p@th");
        assert_eq!(redact_uri("hdfs://nn:9000/landing"), "hdfs://nn:9000/landing");
        assert_eq!(redact_uri("not a uri"), "not a uri");
        // `@` in the password (raw or encoded) or in the path; an encoded `/`.
        assert_eq!(redact_uri("amqp://u:p@ss@h:5672/%2f"), "amqp://***@h:5672/%2f");
        assert_eq!(redact_uri("amqp://u:p%40ss@h/%2f"), "amqp://***@h/%2f");
        assert_eq!(redact_uri("amqp://u:p%2Fss@h/v"), "amqp://***@h/v");
        assert_eq!(redact_uri("amqp://h:5672/team@eu"), "amqp://h:5672/team@eu");
        assert_eq!(redact_uri("amqp://u:p@h/team@eu"), "amqp://***@h/team@eu");
        // A raw `/` in the password does not parse: everything up to the last `@` goes.
        assert_eq!(redact_uri("amqp://u:pa/ss@h:5672/%2f"), "amqp://***@h:5672/%2f");
        // Quoted in a message: the quotes stay, nothing is re-encoded.
        assert_eq!(redact_uri("`amqp://u:pw@h/%2f`"), "`amqp://***@h/%2f`");
        assert_eq!(redact_uri("`amqp://***@h/%2f`"), "`amqp://***@h/%2f`");
        assert_eq!(redact_uri("\"hdfs://nn:9000/x\","), "\"hdfs://nn:9000/x\",");
    }

    #[test]
    fn secret_prints_stars() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "\"***\" ***");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn redactor_hides_values_and_uris_in_messages() {
        let mut redactor = Redactor::default();
        redactor.add("hunter2");
        redactor.add("x");
        assert_eq!(
            redactor.redact("invalid type: string \"hunter2\" at hdfs://a:b@nn/x, x"),
            "invalid type: string \"***\" at hdfs://***@nn/x, x"
        );
        assert!(redactor.contains_secret("pre-hunter2-post"));
        assert_eq!(
            redactor.redact("write `amqp://USER:PASSWORD@host:5672/vhost`"),
            "write `amqp://USER:PASSWORD@host:5672/vhost`",
            "the placeholder in Landfall's own hints stays readable"
        );
        assert_eq!(format!("{redactor:?}"), "Redactor(1 secrets)");
    }
}
