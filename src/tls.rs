//! CA bundles: the PEM certificates the gateway trusts besides the public roots (a server's
//! `caCert`, the config's `gatewayCACertPEM`, the `--gateway-ca-cert` and `--cache-ca-cert`
//! files). Checked once, where they come in, so that a bundle that trusts nothing is refused
//! instead of silently ignored.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The certificates of a PEM bundle: at least one, each usable as a trust anchor. Sections of
/// other kinds (a private key, say) are skipped, as Go's `AppendCertsFromPEM` (the seed's) skips
/// them. The error says what is wrong, never what the bundle holds.
pub fn ca_bundle(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM ({e})", i + 1))?;
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| {
                let why = match e {
                    rustls::Error::InvalidCertificate(c) => format!("{c:?}"),
                    other => other.to_string(),
                };
                format!(
                    "certificate {} is not a usable CA certificate ({why})",
                    i + 1
                )
            })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(
            "must be a PEM bundle with at least one certificate (-----BEGIN CERTIFICATE-----)"
                .into(),
        );
    }
    Ok(certs)
}

/// Reads and checks the CA bundle file of a flag: its text, or why it cannot be used.
pub fn read_ca_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ca_bundle(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// A DER value as PEM text (`label`: `CERTIFICATE`, `PRIVATE KEY`), lines of 64 characters.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A freshly made self-signed CA certificate, as PEM.
    pub(crate) fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        to_pem("CERTIFICATE", cert.der())
    }

    #[test]
    fn bundles_need_at_least_one_usable_certificate() {
        let ca = test_ca_pem();
        let other = test_ca_pem();
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        for (pem, ok, why) in [
            (ca.clone(), Some(1), ""),
            (format!("# comment before\n{ca}\n{other}"), Some(2), ""),
            // Other kinds of section are skipped, as the seed (Go) skips them.
            (format!("{ca}{key}"), Some(1), ""),
            ("".to_owned(), None, "at least one certificate"),
            (
                "not a pem at all".to_owned(),
                None,
                "at least one certificate",
            ),
            (key.to_owned(), None, "at least one certificate"),
            // The seed's own test value: a PEM frame around no certificate.
            (
                "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----".to_owned(),
                None,
                "certificate 1",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
                None,
                "certificate 1 is not a usable CA certificate (BadEncoding)",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_owned(),
                None,
                "certificate 1 is not valid PEM",
            ),
            (
                format!("{ca}-----BEGIN CERTIFICATE-----\nMIIB\n"),
                None,
                "certificate 2",
            ),
        ] {
            match (ca_bundle(&pem), ok) {
                (Ok(certs), Some(n)) => assert_eq!(certs.len(), n, "{pem}"),
                (Err(e), None) => assert!(e.contains(why), "{pem}: {e}"),
                (got, want) => panic!("{pem}: got {:?}, want {want:?}", got.map(|c| c.len())),
            }
        }
    }

    #[test]
    fn files_are_read_and_checked() {
        let ca = test_ca_pem();
        let dir = tempfile::tempdir().expect("dir");
        let good = dir.path().join("ca.pem");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&good, &ca).expect("write");
        std::fs::write(&bad, "garbage").expect("write");
        assert_eq!(read_ca_file(&good), Ok(ca));
        let e = read_ca_file(&bad).expect_err("garbage");
        assert!(e.contains("bad.pem") && e.contains("at least one"), "{e}");
        let e = read_ca_file(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(
            e.contains("cannot read") && e.contains("missing.pem"),
            "{e}"
        );
    }
}
