//! TLS for the listener (rustls), configured by `[server.tls]`.

use crate::config::{Config, ConfigError};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The acceptor for `[server.tls]`, or `None` when TLS is not configured.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, ConfigError> {
    let Some(tls) = &config.server.tls else {
        return Ok(None);
    };
    let error = |key: &str, message: String| {
        config
            .source
            .error(None, format!("server.tls.{key}"), message)
    };
    let cert_path = config.resolve(&tls.cert);
    let key_path = config.resolve(&tls.key);
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| error(key, format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read("cert", &cert_path)?;
    let key_pem = read("key", &key_path)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            error(
                "cert",
                format!("{}: not a PEM certificate chain: {e}", cert_path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(error(
            "cert",
            format!("{} holds no certificate", cert_path.display()),
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| error("key", format!("{}: {e}", key_path.display())))?
        .ok_or_else(|| {
            error(
                "key",
                format!("{} holds no private key", key_path.display()),
            )
        })?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            error(
                "cert",
                format!("the certificate and key do not fit together: {e}"),
            )
        })?;
    let mut server = server;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}
