//! HTTPS as the machine trusts it: the certificates of its own CA bundle, so a registry mirror,
//! a company proxy or a private LLM endpoint that the machine trusts works for the node too
//! (the corpus download, LLM proposals, update manifests).

/// TLS settings with [`system_roots`] (read once per process).
pub fn config() -> ureq::tls::TlsConfig {
    static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();
    ureq::tls::TlsConfig::builder()
        .root_certs(ROOTS.get_or_init(system_roots).clone())
        .build()
}

/// The machine's trusted certificates (`SSL_CERT_FILE`, else Debian's, Fedora's or Alpine's
/// bundle), so a registry mirror or a proxy the machine trusts works; the built-in web PKI
/// roots when none is found.
pub fn system_roots() -> ureq::tls::RootCerts {
    let files = std::env::var("SSL_CERT_FILE").into_iter().chain(
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .map(String::from),
    );
    for file in files {
        let Ok(pem) = std::fs::read(&file) else {
            continue;
        };
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !certs.is_empty() {
            return ureq::tls::RootCerts::new_with_certs(&certs);
        }
    }
    ureq::tls::RootCerts::WebPki
}
