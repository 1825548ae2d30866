//! A small HTTPS client for webhooks (hyper over rustls, the machine's root certificates).

use super::DeliveryError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How long a channel gets to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct Client {
    inner: Hyper<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    pub(super) fn new() -> Result<Client, DeliveryError> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| DeliveryError { message: format!("cannot load the system's root certificates: {e}") })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client { inner: Hyper::builder(TokioExecutor::new()).build(https) })
    }

    /// POSTs `body`; a 2xx answer is delivery, anything else an error with its status.
    pub(super) async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let fail = |message: String| DeliveryError { message };
        let mut request =
            hyper::Request::post(url).header("user-agent", concat!("ses-dmarc/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| fail(format!("{url}: {e}")))?;
        let response = match tokio::time::timeout(TIMEOUT, self.inner.request(request)).await {
            Err(_) => return Err(fail(format!("{url}: no answer within {} s", TIMEOUT.as_secs()))),
            Ok(Err(e)) => {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                return Err(fail(format!("{url}: cannot connect ({cause})")));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = match tokio::time::timeout(TIMEOUT, response.into_body().collect()).await {
            Ok(Ok(b)) => {
                let bytes = b.to_bytes();
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim().to_string()
            }
            _ => String::new(),
        };
        Err(fail(format!(
            "{url} answered {status}{}",
            if text.is_empty() { String::new() } else { format!(": {text}") }
        )))
    }
}
