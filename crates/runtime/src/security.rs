//! Checks of the Kafka and ClickHouse security settings, run when the
//! config loads, so a service with a wrong setting stops at once with an
//! error that names the setting (and its environment variable) instead of
//! retrying a connection that can never work.
//!
//! Errors never quote a password or key password.

use std::path::Path;

use crate::{
    config::{ClickHouseConfig, KafkaConfig},
    kafka::builtin_features,
    tls, RuntimeError,
};

/// `kafka.security_protocol`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [(&'static str, SecurityProtocol); 4] = [
        ("plaintext", Self::Plaintext),
        ("ssl", Self::Ssl),
        ("sasl_plaintext", Self::SaslPlaintext),
        ("sasl_ssl", Self::SaslSsl),
    ];

    /// The protocol `kafka` asks for; unset is `plaintext`. Case does not
    /// matter (`SASL_SSL` is `sasl_ssl`).
    pub fn of(kafka: &KafkaConfig) -> Result<Self, RuntimeError> {
        let Some(raw) = &kafka.security_protocol else {
            return Ok(Self::Plaintext);
        };
        let wanted = raw.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, protocol)| *protocol)
            .ok_or_else(|| {
                invalid(
                    "kafka",
                    "security_protocol",
                    format!(
                        "{raw:?} is not a protocol; use plaintext, ssl, sasl_plaintext or sasl_ssl"
                    ),
                )
            })
    }

    /// The librdkafka name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(name, _)| *name)
            .expect("every protocol is listed")
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// The SASL mechanisms Centile supports, with the librdkafka feature each needs.
const MECHANISMS: [(&str, &str); 3] = [
    ("PLAIN", "sasl_plain"),
    ("SCRAM-SHA-256", "sasl_scram"),
    ("SCRAM-SHA-512", "sasl_scram"),
];

/// `kafka.sasl_mechanism` in librdkafka's spelling (upper case).
pub fn sasl_mechanism(kafka: &KafkaConfig) -> Option<String> {
    kafka
        .sasl_mechanism
        .as_deref()
        .map(|m| m.trim().to_ascii_uppercase())
}

/// `section.key (CENTILE_SECTION_KEY)`: how errors name a setting.
pub fn setting(section: &str, key: &str) -> String {
    format!(
        "{section}.{key} (CENTILE_{}_{})",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

fn invalid(section: &str, key: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Config(format!("{}: {reason}", setting(section, key)))
}

pub(crate) fn validate_kafka(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    let protocol = SecurityProtocol::of(kafka)?;
    let protocol_named = match &kafka.security_protocol {
        Some(_) => format!("kafka.security_protocol is {:?}", protocol.as_str()),
        None => "kafka.security_protocol is unset (plaintext)".to_owned(),
    };

    // Settings that only matter with SASL or TLS are refused without them:
    // set alone they almost always mean a forgotten security_protocol, and
    // the credentials would silently not be used.
    if !protocol.uses_sasl() {
        let sasl = [
            ("sasl_mechanism", kafka.sasl_mechanism.is_some()),
            ("sasl_username", kafka.sasl_username.is_some()),
            ("sasl_password", kafka.sasl_password.is_some()),
        ];
        if let Some((key, _)) = sasl.iter().find(|(_, set)| *set) {
            return Err(invalid(
                "kafka",
                key,
                format!("is set but {protocol_named}; SASL credentials are used only with sasl_plaintext or sasl_ssl"),
            ));
        }
    }
    if !protocol.uses_tls() {
        let tls = [
            ("ssl_ca_location", kafka.ssl_ca_location.is_some()),
            (
                "ssl_certificate_location",
                kafka.ssl_certificate_location.is_some(),
            ),
            ("ssl_key_location", kafka.ssl_key_location.is_some()),
            ("ssl_key_password", kafka.ssl_key_password.is_some()),
        ];
        if let Some((key, _)) = tls.iter().find(|(_, set)| *set) {
            return Err(invalid(
                "kafka",
                key,
                format!(
                    "is set but {protocol_named}; TLS settings are used only with ssl or sasl_ssl"
                ),
            ));
        }
    }

    if protocol.uses_sasl() {
        validate_sasl(kafka, protocol)?;
    }
    if protocol.uses_tls() {
        validate_kafka_tls(kafka)?;
    }
    Ok(())
}

fn validate_sasl(kafka: &KafkaConfig, protocol: SecurityProtocol) -> Result<(), RuntimeError> {
    let supported = MECHANISMS.map(|(m, _)| m).join(", ");
    let Some(mechanism) = sasl_mechanism(kafka) else {
        return Err(invalid(
            "kafka",
            "sasl_mechanism",
            format!(
                "is required with security_protocol {:?}; use one of {supported}",
                protocol.as_str()
            ),
        ));
    };
    let features = builtin_features();
    match MECHANISMS.iter().find(|(m, _)| *m == mechanism) {
        Some((_, feature)) if features.iter().any(|f| f == feature) => {}
        Some((_, feature)) => {
            return Err(invalid(
                "kafka",
                "sasl_mechanism",
                format!(
                    "{mechanism} needs the librdkafka feature {feature}, which this build lacks (builtin.features: {})",
                    features.join(",")
                ),
            ))
        }
        None if mechanism == "GSSAPI" => {
            return Err(invalid(
                "kafka",
                "sasl_mechanism",
                format!(
                    "GSSAPI (Kerberos) is not available: this build of Centile's Kafka client (librdkafka) has no Cyrus SASL/Kerberos support (builtin.features: {}); use one of {supported}",
                    features.join(",")
                ),
            ))
        }
        None if mechanism == "OAUTHBEARER" => {
            return Err(invalid(
                "kafka",
                "sasl_mechanism",
                format!("OAUTHBEARER is not supported: Centile has no OAuth token provider and its Kafka client is built without OIDC; use one of {supported}"),
            ))
        }
        None => {
            return Err(invalid(
                "kafka",
                "sasl_mechanism",
                format!("{mechanism:?} is not a supported SASL mechanism; use one of {supported}"),
            ))
        }
    }
    if kafka
        .sasl_username
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
    {
        return Err(invalid(
            "kafka",
            "sasl_username",
            format!(
                "is required with security_protocol {:?} (SASL {mechanism})",
                protocol.as_str()
            ),
        ));
    }
    if kafka
        .sasl_password
        .as_ref()
        .is_none_or(|p| p.expose().is_empty())
    {
        return Err(invalid(
            "kafka",
            "sasl_password",
            format!(
                "is required with security_protocol {:?} (SASL {mechanism})",
                protocol.as_str()
            ),
        ));
    }
    Ok(())
}

fn validate_kafka_tls(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    if let Some(ca) = &kafka.ssl_ca_location {
        // librdkafka also takes a directory of hashed certificates, or
        // `probe` to search the usual system locations.
        if ca.as_os_str() != "probe" {
            if ca.is_dir() {
                std::fs::read_dir(ca).map_err(|e| {
                    invalid(
                        "kafka",
                        "ssl_ca_location",
                        format!("cannot read directory {}: {e}", ca.display()),
                    )
                })?;
            } else {
                tls::read_certificates(ca)
                    .map_err(|reason| invalid("kafka", "ssl_ca_location", reason))?;
            }
        }
    }
    match (&kafka.ssl_certificate_location, &kafka.ssl_key_location) {
        (Some(cert), Some(key)) => {
            tls::read_certificates(cert)
                .map_err(|reason| invalid("kafka", "ssl_certificate_location", reason))?;
            tls::check_private_key(key)
                .map_err(|reason| invalid("kafka", "ssl_key_location", reason))?;
        }
        (Some(_), None) => {
            return Err(invalid(
                "kafka",
                "ssl_key_location",
                "is required with kafka.ssl_certificate_location (the client certificate's private key)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "kafka",
                "ssl_certificate_location",
                "is required with kafka.ssl_key_location (the client certificate)",
            ))
        }
        (None, None) => {
            if kafka.ssl_key_password.is_some() {
                return Err(invalid(
                    "kafka",
                    "ssl_key_password",
                    "is set but kafka.ssl_key_location is not",
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn validate_clickhouse(clickhouse: &ClickHouseConfig) -> Result<(), RuntimeError> {
    let url = clickhouse.url.trim();
    let lower = url.to_ascii_lowercase();
    let https = lower.starts_with("https://");
    if !https && !lower.starts_with("http://") {
        return Err(invalid(
            "clickhouse",
            "url",
            format!(
                "{:?} must start with http:// or https://",
                redact_userinfo(url)
            ),
        ));
    }
    if let Some(ca) = &clickhouse.ca_file {
        if !https {
            return Err(invalid(
                "clickhouse",
                "ca_file",
                "is set but clickhouse.url is http://, which does not use TLS; use an https:// url",
            ));
        }
        tls::read_certificates(ca).map_err(|reason| invalid("clickhouse", "ca_file", reason))?;
    }
    Ok(())
}

/// `scheme://user:password@host` without the user and password.
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Whether `path` can be read; the reason names the path.
pub(crate) fn readable(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::tests::env, Config, Secret};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::load_from(None, env(pairs)).map_err(|e| e.to_string())
    }

    /// A valid `sasl_ssl` setup with `changes` applied; an empty value
    /// removes the variable.
    fn sasl_ssl(changes: &[(&str, &str)]) -> Result<Config, String> {
        let mut pairs = vec![
            ("CENTILE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("CENTILE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("CENTILE_KAFKA_SASL_USERNAME", "centile"),
            ("CENTILE_KAFKA_SASL_PASSWORD", "pw-never-shown"),
        ];
        pairs.retain(|(k, _)| !changes.iter().any(|(c, _)| c == k));
        pairs.extend(changes.iter().copied());
        pairs.retain(|(_, v)| !v.is_empty());
        load(&pairs)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("centile-security-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A syntactically valid PEM certificate block (the checks here parse
    /// PEM framing, not X.509).
    const PEM_CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUAA==\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_build_has_tls_and_scram_but_not_gssapi() {
        let features = builtin_features();
        println!("librdkafka builtin.features = {}", features.join(","));
        for wanted in ["ssl", "sasl", "sasl_plain", "sasl_scram"] {
            assert!(features.iter().any(|f| f == wanted), "{features:?}");
        }
        assert!(!features.iter().any(|f| f == "sasl_gssapi"), "{features:?}");
    }

    #[test]
    fn sasl_ssl_with_credentials_loads() {
        let config = sasl_ssl(&[("CENTILE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")]).unwrap();
        assert_eq!(config.kafka.protocol().unwrap(), SecurityProtocol::SaslSsl);
        assert!(config.kafka.ssl_endpoint_identification);
        for mechanism in ["PLAIN", "scram-sha-256", "SCRAM-SHA-512"] {
            sasl_ssl(&[("CENTILE_KAFKA_SASL_MECHANISM", mechanism)]).unwrap();
        }
    }

    #[test]
    fn unknown_protocols_and_mechanisms_are_named() {
        let err = load(&[("CENTILE_KAFKA_SECURITY_PROTOCOL", "sasl_tls")]).unwrap_err();
        assert!(
            err.contains("kafka.security_protocol (CENTILE_KAFKA_SECURITY_PROTOCOL)")
                && err.contains("\"sasl_tls\"")
                && err.contains("sasl_ssl"),
            "{err}"
        );
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1")]).unwrap_err();
        assert!(
            err.contains("kafka.sasl_mechanism") && err.contains("SCRAM-SHA-1"),
            "{err}"
        );
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_MECHANISM", "")]).unwrap_err();
        assert!(
            err.contains("kafka.sasl_mechanism") && err.contains("required"),
            "{err}"
        );
    }

    #[test]
    fn gssapi_is_refused_with_the_reason() {
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_MECHANISM", "GSSAPI")]).unwrap_err();
        assert!(
            err.contains("kafka.sasl_mechanism (CENTILE_KAFKA_SASL_MECHANISM)")
                && err.contains("Kerberos")
                && err.contains("Cyrus SASL")
                && err.contains("builtin.features"),
            "{err}"
        );
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_MECHANISM", "OAUTHBEARER")]).unwrap_err();
        assert!(err.contains("OAUTHBEARER is not supported"), "{err}");
    }

    #[test]
    fn sasl_needs_username_and_password() {
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_USERNAME", "")]).unwrap_err();
        assert!(
            err.contains("kafka.sasl_username") && err.contains("required"),
            "{err}"
        );
        let err = sasl_ssl(&[("CENTILE_KAFKA_SASL_PASSWORD", "")]).unwrap_err();
        assert!(
            err.contains("kafka.sasl_password (CENTILE_KAFKA_SASL_PASSWORD)")
                && err.contains("required"),
            "{err}"
        );
    }

    #[test]
    fn credentials_without_sasl_are_refused() {
        let err = load(&[
            ("CENTILE_KAFKA_SASL_USERNAME", "centile"),
            ("CENTILE_KAFKA_SASL_PASSWORD", "pw-never-shown"),
        ])
        .unwrap_err();
        assert!(
            err.contains("kafka.sasl_username") && err.contains("unset (plaintext)"),
            "{err}"
        );
        assert!(!err.contains("pw-never-shown"), "{err}");
        let err = load(&[
            ("CENTILE_KAFKA_SECURITY_PROTOCOL", "plaintext"),
            ("CENTILE_KAFKA_SSL_CA_LOCATION", "/etc/ssl/certs"),
        ])
        .unwrap_err();
        assert!(
            err.contains("kafka.ssl_ca_location") && err.contains("ssl or sasl_ssl"),
            "{err}"
        );
    }

    #[test]
    fn certificate_files_must_exist_and_hold_pem() {
        let dir = scratch("files");
        let missing = dir.join("missing.pem");
        let missing = missing.to_str().unwrap();
        let err = sasl_ssl(&[("CENTILE_KAFKA_SSL_CA_LOCATION", missing)]).unwrap_err();
        assert!(
            err.contains("kafka.ssl_ca_location (CENTILE_KAFKA_SSL_CA_LOCATION)")
                && err.contains("cannot read")
                && err.contains("missing.pem"),
            "{err}"
        );
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err =
            sasl_ssl(&[("CENTILE_KAFKA_SSL_CA_LOCATION", garbage.to_str().unwrap())]).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");

        let ca = dir.join("ca.pem");
        std::fs::write(&ca, PEM_CERT).unwrap();
        let ca = ca.to_str().unwrap();
        sasl_ssl(&[("CENTILE_KAFKA_SSL_CA_LOCATION", ca)]).unwrap();
        sasl_ssl(&[("CENTILE_KAFKA_SSL_CA_LOCATION", "probe")]).unwrap();

        let err = sasl_ssl(&[("CENTILE_KAFKA_SSL_CERTIFICATE_LOCATION", ca)]).unwrap_err();
        assert!(err.contains("kafka.ssl_key_location"), "{err}");
        let err = sasl_ssl(&[
            ("CENTILE_KAFKA_SSL_CERTIFICATE_LOCATION", ca),
            ("CENTILE_KAFKA_SSL_KEY_LOCATION", ca),
        ])
        .unwrap_err();
        assert!(
            err.contains("kafka.ssl_key_location") && err.contains("no PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn clickhouse_ca_needs_https_and_a_readable_file() {
        let err = load(&[("CENTILE_CLICKHOUSE_URL", "tcp://127.0.0.1:9000")]).unwrap_err();
        assert!(
            err.contains("clickhouse.url (CENTILE_CLICKHOUSE_URL)"),
            "{err}"
        );
        let err = load(&[("CENTILE_CLICKHOUSE_URL", "ftp://user:secret9@host")]).unwrap_err();
        assert!(!err.contains("secret9"), "{err}");
        let err = load(&[("CENTILE_CLICKHOUSE_CA_FILE", "/etc/hostname")]).unwrap_err();
        assert!(
            err.contains("clickhouse.ca_file (CENTILE_CLICKHOUSE_CA_FILE)")
                && err.contains("http://"),
            "{err}"
        );
        let err = load(&[
            ("CENTILE_CLICKHOUSE_URL", "https://ch.example:8443"),
            ("CENTILE_CLICKHOUSE_CA_FILE", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert!(
            err.contains("clickhouse.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        load(&[("CENTILE_CLICKHOUSE_URL", "HTTPS://ch.example:8443")]).unwrap();
    }

    #[test]
    fn errors_never_quote_secrets() {
        let mut kafka = KafkaConfig {
            security_protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some("GSSAPI".into()),
            sasl_username: Some("centile".into()),
            sasl_password: Some(Secret::new("pw-never-shown")),
            ssl_key_password: Some(Secret::new("key-pw-never-shown")),
            ..KafkaConfig::default()
        };
        for mechanism in ["GSSAPI", "SCRAM-SHA-512"] {
            kafka.sasl_mechanism = Some(mechanism.into());
            let err = kafka.validate().unwrap_err().to_string();
            assert!(
                !err.contains("pw-never-shown") && !err.contains("key-pw-never-shown"),
                "{err}"
            );
        }
    }
}
