//! One JSON POST, and what its answer means for retrying: shared by the
//! webhook and Alertmanager channels.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};

use drover_types::error::error_chain;

use crate::error::DeliveryError;

/// How much of an error answer's body goes into the delivery record.
const MAX_ERROR_BODY_CHARS: usize = 300;

/// POSTs `body` (JSON) to `url` with `headers`; succeeds on any 2xx.
///
/// Retried: connection failures, timeouts, 408, 429 and 5xx answers.
/// Permanent: an invalid URL or header, any other answer.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: String,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let mut request = http.post(url).timeout(timeout).header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| DeliveryError::permanent(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| DeliveryError::permanent(format!("invalid value of header {name}")))?;
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.map_err(|error| {
        let message = format!("POST {url}: {}", error_chain(&error));
        if error.is_builder() { DeliveryError::permanent(message) } else { DeliveryError::retryable(message) }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.trim().chars().take(MAX_ERROR_BODY_CHARS).collect();
    let message = if excerpt.is_empty() {
        format!("POST {url}: answered {status}")
    } else {
        format!("POST {url}: answered {status}: {excerpt}")
    };
    let retry =
        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT;
    Err(DeliveryError { message, permanent: !retry, retry_after })
}
