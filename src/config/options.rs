//! Free-form client settings passed through to librdkafka or the HDFS client, with secret
//! values hidden from `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::secret::{is_secret_key, Redactor, REDACTED};

/// `key: value` settings handed to a client library as strings. YAML scalars of any type are
/// accepted (`enable.ssl.certificate.verification: false` becomes `"false"`), since the
/// libraries parse strings themselves. Values whose key looks secret ([`is_secret_key`]) or
/// that came from a secret-named environment variable print as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientOptions(BTreeMap<String, OptionValue>);

#[derive(Clone, PartialEq, Eq)]
struct OptionValue {
    value: String,
    secret: bool,
}

impl ClientOptions {
    /// Builds options from pairs (tests and programmatic configs).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ClientOptions {
        ClientOptions(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), OptionValue { value: v.to_string(), secret: is_secret_key(k) }))
                .collect(),
        )
    }

    /// Every `(key, value)` in key order, values in clear: for the client library only.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.value.as_str()))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The value of `key`, in clear.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.value.as_str())
    }

    /// Whether `key` is set and hidden when printed.
    pub fn is_secret(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| v.secret)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Marks values holding a secret known to `redactor` (from `${KAFKA_PASSWORD}` etc.).
    pub(crate) fn mark_secrets(&mut self, redactor: &Redactor) {
        for value in self.0.values_mut() {
            value.secret |= redactor.contains_secret(&value.value);
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, if v.secret { REDACTED } else { v.value.as_str() })))
            .finish()
    }
}

/// A YAML scalar of any type, as the string a client library expects.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for ClientOptions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, ScalarString>::deserialize(deserializer)?;
        Ok(ClientOptions(
            raw.into_iter()
                .map(|(k, ScalarString(value))| {
                    let secret = is_secret_key(&k);
                    (k, OptionValue { value, secret })
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_become_strings_and_secrets_are_hidden() {
        let options: ClientOptions = serde_norway::from_str(
            "security.protocol: SASL_SSL\nsasl.password: hunter2\nenable.ssl.certificate.verification: false\nfetch.min.bytes: 1\n",
        )
        .unwrap();
        assert_eq!(options.get("enable.ssl.certificate.verification"), Some("false"));
        assert_eq!(options.get("sasl.password"), Some("hunter2"));
        let printed = format!("{options:?}");
        assert_eq!(
            printed,
            r#"{"enable.ssl.certificate.verification": "false", "fetch.min.bytes": "1", "sasl.password": "***", "security.protocol": "SASL_SSL"}"#
        );
    }

    #[test]
    fn values_from_secret_env_vars_are_hidden_too() {
        let mut options = ClientOptions::from_pairs([("sasl.username", "svc-landfall-hunter2")]);
        let mut redactor = Redactor::default();
        redactor.add("hunter2");
        options.mark_secrets(&redactor);
        assert!(options.is_secret("sasl.username"));
        assert_eq!(format!("{options:?}"), r#"{"sasl.username": "***"}"#);
    }
}
