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
    SECRET_KEY_FRAGMENTS
        .iter()
        .any(|fragment| key.contains(fragment))
        || key.split('.').any(|part| part == "key")
}

/// Hides the userinfo of a URI: `hdfs://alice:pw@nn:9000/x` → `hdfs://***@nn:9000/x`.
/// The whole userinfo goes, since a bare token (`https://TOKEN@host`) is as secret as a
/// password. Text that is not a URI with userinfo is returned unchanged.
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let Some(scheme_end) = uri.find("://") else {
        return Cow::Borrowed(uri);
    };
    let authority_start = scheme_end + 3;
    let authority_end = uri[authority_start..]
        .find(['/', '?', '#'])
        .map_or(uri.len(), |i| authority_start + i);
    match uri[authority_start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}{REDACTED}{}",
            &uri[..authority_start],
            &uri[authority_start + at..]
        )),
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
        out.split(' ')
            .map(|word| redact_uri(word).into_owned())
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
        for key in [
            "client.id",
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "BROKERS",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn uri_userinfo_is_hidden() {
        assert_eq!(
            redact_uri("hdfs://alice:pw@nn:9000/x"),
            "hdfs://***@nn:9000/x"
        );
        assert_eq!(
            redact_uri("https://TOKEN@host/p@th"),
            "https://***@host/p@th"
        );
        assert_eq!(
            redact_uri("hdfs://nn:9000/landing"),
            "hdfs://nn:9000/landing"
        );
        assert_eq!(redact_uri("not a uri"), "not a uri");
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
        assert_eq!(format!("{redactor:?}"), "Redactor(1 secrets)");
    }
}
