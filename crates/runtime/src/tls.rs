//! TLS trust for Centile's own HTTPS clients (ClickHouse): the system's
//! trusted roots plus an optional CA file, with rustls and its `ring`
//! provider. Kafka's TLS is librdkafka's (OpenSSL); this module only
//! checks the files it is given.

use std::{
    error::Error,
    path::Path,
    sync::{Arc, OnceLock},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};

use crate::security::readable;

/// Every PEM certificate in `path`; an error names the path and what is
/// wrong with it (missing, unreadable, no certificate in it).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = readable(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Whether `path` holds a PEM private key, encrypted or not.
pub fn check_private_key(path: &Path) -> Result<(), String> {
    let bytes = readable(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----") {
        Ok(())
    } else {
        Err(format!(
            "{} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)",
            path.display()
        ))
    }
}

/// The system's trusted roots (`/etc/ssl/certs` on Debian, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), loaded once per process.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            tracing::warn!(errors = ?found.errors, "no system CA certificates found; only configured CA files are trusted");
        }
        found.certs
    })
}

/// A rustls client config trusting the system's roots and every
/// certificate in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    // Some system bundles hold certificates rustls cannot use; skip them.
    let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `error: cause: cause ...`, including the errors that `std::io::Error`
/// wraps (which its `source()` skips), so a TLS failure deep inside an HTTP
/// client's error shows its real reason.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = inner(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = inner(e);
    }
    parts.join(": ")
}

/// The first rustls error in `error`'s chain: a failed handshake, an
/// untrusted or mismatched certificate.
pub fn tls_failure<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = inner(e);
    }
    None
}

fn inner<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        if let Some(wrapped) = io.get_ref() {
            return Some(wrapped);
        }
    }
    error.source()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_wrapped_tls_errors_are_found_and_described() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(matches!(
            tls_failure(&io),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        assert!(
            error_chain(&io).contains("UnknownIssuer"),
            "{}",
            error_chain(&io)
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_failure(&plain).is_none());
    }

    #[test]
    fn system_roots_load_and_a_missing_ca_file_is_named() {
        assert!(!system_roots().is_empty(), "Debian ships ca-certificates");
        client_config(None).unwrap();
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
