//! TLS for the XMPP connection: which certificate authorities we trust
//! (the system's, plus a PEM bundle the user names: `--tls-ca`, for
//! self-hosted servers with a CA of their own), the STARTTLS upgrade itself
//! (RFC 6120 section 5) with channel binding, and a certificate failure as
//! an error of its own that names the certificate.
//!
//! tokio-xmpp's STARTTLS builds its own rustls configuration from the
//! system roots only, so the negotiation is done here with ours.
//!
//! Not here: when to connect and whether to retry (`connect.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use sasl::common::ChannelBinding;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_xmpp::error::Error as XmppError;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_xmpp::rustls::client::WebPkiServerVerifier;
use tokio_xmpp::rustls::pki_types::pem::PemObject;
use tokio_xmpp::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_xmpp::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_xmpp::xmlstream::{ReadError, XmppStream, XmppStreamElement};

/// The label of TLS 1.3 channel binding (RFC 9266, `tls-exporter`).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// The certificate authorities we trust; cheap to clone.
#[derive(Clone)]
pub struct TrustedRoots {
    roots: Arc<RootCertStore>,
    /// How many came from the extra bundle (for the log).
    extra: usize,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoots")
            .field("roots", &self.roots.len())
            .field("extra", &self.extra)
            .finish()
    }
}

/// The extra CA bundle cannot be used; the message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    #[error("cannot read the CA bundle {0}: {1}")]
    Read(PathBuf, String),
    #[error("the CA bundle {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty(PathBuf),
    #[error("the CA bundle {0} holds a certificate that cannot be used as a CA: {1}")]
    Unusable(PathBuf, String),
}

/// Reads the PEM certificates of `path` (a CA bundle).
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaBundleError> {
    let bytes = std::fs::read(path).map_err(|e| CaBundleError::Read(path.into(), e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaBundleError::Read(path.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(CaBundleError::Empty(path.into()));
    }
    Ok(certs)
}

impl TrustedRoots {
    /// The system's roots, plus the certificates of `extra_ca` (a PEM
    /// bundle) when given.
    pub fn load(extra_ca: Option<&Path>) -> Result<TrustedRoots, CaBundleError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("a system certificate could not be read: {e}");
        }
        let (system, _) = roots.add_parsable_certificates(native.certs);
        let mut extra = 0;
        if let Some(path) = extra_ca {
            for cert in read_ca_bundle(path)? {
                roots
                    .add(cert)
                    .map_err(|e| CaBundleError::Unusable(path.into(), e.to_string()))?;
                extra += 1;
            }
            tracing::info!(
                bundle = %path.display(),
                certificates = extra,
                "trusting the extra certificate authorities of the CA bundle"
            );
        }
        tracing::debug!(system, extra, "trusted certificate authorities");
        Ok(TrustedRoots {
            roots: Arc::new(roots),
            extra,
        })
    }

    /// Only the certificates of `pem` (tests).
    pub fn only(pem: &[u8]) -> TrustedRoots {
        let mut roots = RootCertStore::empty();
        let mut extra = 0;
        for cert in CertificateDer::pem_slice_iter(pem).flatten() {
            if roots.add(cert).is_ok() {
                extra += 1;
            }
        }
        TrustedRoots {
            roots: Arc::new(roots),
            extra,
        }
    }
}

/// The server's certificate was refused: not retried, since retrying
/// cannot change it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct CertificateRejected {
    /// The name we checked the certificate against (the JID's domain).
    pub server: String,
    /// Why, in words.
    pub reason: String,
    /// The presented certificate's subject and issuer, when it could be
    /// read.
    pub subject: Option<String>,
    pub issuer: Option<String>,
}

impl CertificateRejected {
    fn describe(&self) -> String {
        let mut out = format!(
            "the server's certificate for {} is not trusted: {}",
            self.server, self.reason
        );
        match (&self.subject, &self.issuer) {
            (Some(s), Some(i)) => {
                out.push_str(&format!(" (certificate of \"{s}\", issued by \"{i}\")"))
            }
            (Some(s), None) => out.push_str(&format!(" (certificate of \"{s}\")")),
            _ => {}
        }
        out.push_str(
            ". If the server uses a certificate authority of its own, add that CA's \
             certificate (PEM) to the trusted ones with the tls-ca setting",
        );
        out
    }
}

/// Words for why a certificate was refused.
fn reason(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "it is issued by a certificate authority we do not trust".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is made out for another name".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (is this computer's clock right?)".into()
        }
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature does not match its issuer".into(),
        other => format!("{other:?}"),
    }
}

/// The subject and issuer of a DER certificate, as RFC 4514 strings.
pub fn subject_and_issuer(der: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.subject().to_string(), cert.issuer().to_string()))
}

/// Why a certificate was refused, and its subject and issuer if readable.
type Refusal = (CertificateError, Option<(String, String)>);

/// The web PKI verifier, remembering the certificate it refused.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    refused: Mutex<Option<Refusal>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_xmpp::rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(tokio_xmpp::rustls::Error::InvalidCertificate(e)) = &result {
            *self.refused.lock().unwrap() = Some((e.clone(), subject_and_issuer(end_entity)));
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_xmpp::rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_xmpp::rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The TLS handshake over `tcp` with `domain` checked against `roots`;
/// returns the stream and its channel binding (`tls-exporter` on TLS 1.3,
/// none before, as tokio-xmpp does). A refused certificate is an
/// [`std::io::Error`] holding a [`CertificateRejected`].
pub async fn handshake<S>(
    tcp: S,
    domain: &str,
    roots: &TrustedRoots,
) -> Result<(TlsStream<S>, ChannelBinding), XmppError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(domain.to_string()).map_err(|e| {
        XmppError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{domain:?} is not a name a certificate can be checked against: {e}"),
        ))
    })?;
    let webpki = WebPkiServerVerifier::builder(roots.roots.clone())
        .build()
        .map_err(|e| {
            XmppError::Io(std::io::Error::other(format!(
                "no certificate authority to check the server against: {e}"
            )))
        })?;
    let verifier = Arc::new(Recording {
        inner: webpki,
        refused: Mutex::new(None),
    });
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let tls = match TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let refused = verifier.refused.lock().unwrap().take();
            return Err(XmppError::Io(match refused {
                Some((why, names)) => std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    CertificateRejected {
                        server: domain.to_string(),
                        reason: reason(&why),
                        subject: names.as_ref().map(|n| n.0.clone()),
                        issuer: names.map(|n| n.1),
                    },
                ),
                None => e,
            }));
        }
    };
    let (_, connection) = tls.get_ref();
    let binding = match connection.protocol_version() {
        Some(tokio_xmpp::rustls::ProtocolVersion::TLSv1_3) => {
            let exported = connection
                .export_keying_material(vec![0u8; 32], EXPORTER_LABEL, None)
                .map_err(|e| XmppError::Io(std::io::Error::other(e)))?;
            ChannelBinding::TlsExporter(exported)
        }
        // tls-unique (TLS 1.2) is not offered: it is weaker, and a server
        // that only has it still accepts SCRAM without the -PLUS.
        _ => ChannelBinding::None,
    };
    Ok((tls, binding))
}

/// Sends `<starttls/>` and waits for the server's `<proceed/>`
/// (RFC 6120 section 5.4.2); returns the bare TCP stream to run TLS on.
pub async fn starttls(
    mut stream: XmppStream<BufStream<TcpStream>>,
) -> Result<TcpStream, XmppError> {
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await?;
    loop {
        match stream
            .next()
            .await
            .map(|r| r.and_then(|e| e.into_read_error()))
        {
            Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
            Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
            Some(Err(ReadError::HardError(e))) => return Err(e.into()),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e).into())
            }
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                return Err(XmppError::Disconnected)
            }
        }
    }
    // Nothing is buffered: the server waits for our TLS hello.
    Ok(stream.into_inner().into_inner())
}

/// The [`CertificateRejected`] inside an error, if that is what it is.
pub fn certificate_rejected(err: &XmppError) -> Option<&CertificateRejected> {
    match err {
        XmppError::Io(e) => e.get_ref()?.downcast_ref::<CertificateRejected>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        assert!(matches!(
            TrustedRoots::load(Some(&missing)),
            Err(CaBundleError::Read(p, _)) if p == missing
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            TrustedRoots::load(Some(&empty)),
            Err(CaBundleError::Empty(p)) if p == empty
        ));
    }

    const CA: &[u8] = include_bytes!("testdata/ca.pem");
    const SERVER_CERT: &[u8] = include_bytes!("testdata/server.pem");
    const SERVER_KEY: &[u8] = include_bytes!("testdata/server.key");

    /// A TLS server on loopback with the fixture's certificate for
    /// `xmpp.test.example`; returns its address.
    async fn tls_server() -> std::net::SocketAddr {
        use tokio_xmpp::rustls::pki_types::PrivateKeyDer;
        let _ = tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider().install_default();
        let certs = CertificateDer::pem_slice_iter(SERVER_CERT)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
        let config = tokio_xmpp::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        use tokio::io::AsyncWriteExt;
                        let _ = tls.write_all(b"hello").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_extra_ca_is_trusted_and_tls13_gives_channel_binding() {
        let addr = tls_server().await;
        let roots = TrustedRoots::only(CA);
        assert_eq!(roots.extra, 1);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut tls, binding) = handshake(tcp, "xmpp.test.example", &roots).await.unwrap();
        assert!(
            matches!(&binding, ChannelBinding::TlsExporter(b) if b.len() == 32),
            "{binding:?}"
        );
        let mut got = Vec::new();
        use tokio::io::AsyncReadExt;
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
    }

    #[tokio::test]
    async fn an_untrusted_or_misnamed_certificate_is_a_refusal_naming_it() {
        let addr = tls_server().await;
        // Some root, but not the one that issued the server's certificate.
        let others = TrustedRoots::only(SERVER_CERT);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = handshake(tcp, "xmpp.test.example", &others)
            .await
            .unwrap_err();
        let refused = certificate_rejected(&err).expect("a certificate refusal");
        assert_eq!(refused.server, "xmpp.test.example");
        assert!(refused.reason.contains("do not trust"), "{refused:?}");
        assert_eq!(refused.subject.as_deref(), Some("CN=xmpp.test.example"));
        assert_eq!(
            refused.issuer.as_deref(),
            Some("O=Bitween tests, CN=Bitween test CA")
        );

        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = handshake(tcp, "other.example", &TrustedRoots::only(CA))
            .await
            .unwrap_err();
        let refused = certificate_rejected(&err).expect("a certificate refusal");
        assert!(refused.reason.contains("another name"), "{refused:?}");
    }

    #[test]
    fn the_refusal_names_the_certificate_and_what_to_do() {
        let e = CertificateRejected {
            server: "lab.example".into(),
            reason: reason(&CertificateError::UnknownIssuer),
            subject: Some("CN=lab.example".into()),
            issuer: Some("CN=Bitween lab CA".into()),
        };
        let text = e.to_string();
        assert!(text.contains("lab.example"), "{text}");
        assert!(text.contains("CN=Bitween lab CA"), "{text}");
        assert!(text.contains("do not trust"), "{text}");
        assert!(text.contains("tls-ca"), "{text}");
        let wrapped = XmppError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.clone(),
        ));
        assert_eq!(certificate_rejected(&wrapped), Some(&e));
        let other = XmppError::Io(std::io::Error::other("reset"));
        assert_eq!(certificate_rejected(&other), None);
    }
}
