//! The HTTP client the ACME account speaks through: hyper over rustls,
//! trusting the Mozilla roots and the operator's `--acme-ca`, each request
//! bounded in time.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};

/// How long one request to the ACME server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's client for the ACME server.
pub(super) struct AcmeHttp(Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl AcmeHttp {
    /// A client that trusts the Mozilla roots, and the certificates in
    /// `ca` when given.
    pub(super) fn new(ca: Option<&Path>) -> Result<Self, String> {
        let tls = crate::pem::client_config(true, ca)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(AcmeHttp(
            Client::builder(TokioExecutor::new()).build(connector),
        ))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(request));
        Box::pin(async move {
            match sent.await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(error)) => Err(Error::Other(Box::new(error))),
                Err(_) => Err(Error::Other(
                    "the ACME server did not answer in time".into(),
                )),
            }
        })
    }
}
