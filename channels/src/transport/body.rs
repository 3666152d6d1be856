//! Reading a request body: at most a given size, within a deadline. A body
//! that stops arriving is refused ([`BodyError::TimedOut`]: 408 and the
//! connection closed), so a client cannot pin memory by sending all but one
//! byte. A body over the size is refused with 413 after it has been read
//! to its end and dropped (if it is not huge): a server that answers and
//! closes while the client is still sending makes the client's kernel
//! reset the connection, and the client may never see the 413 (it sees
//! EPIPE or ECONNRESET instead).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// How long a request body may take to arrive: the HTTP server puts it in
/// every request's extensions (from the config).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The body deadline when the server did not set one (a router used
/// without `conn`, as in unit tests): long enough for any honest client.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);

/// Refused bodies up to this size are read (and dropped) before the 413.
const DRAIN_AT_MOST: u64 = 16 << 20;
/// How long reading a refused body may take.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit (declared or sent).
    #[error("request body too large")]
    TooLarge,
    /// Not all there within the deadline.
    #[error("the request body did not arrive in time")]
    TimedOut,
    /// The connection failed while reading it.
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

/// The whole body if it is at most `limit` bytes and arrives within
/// `within`. A longer one (declared or sent) is drained and refused.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    within: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if let Some(len) = declared.filter(|len| *len > limit as u64) {
        drain(stream, len).await;
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            if buf.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(within, read).await {
        Ok(Err(BodyError::TooLarge)) => {
            // A chunked body (no length to refuse it by) that went over.
            drain(stream, DRAIN_AT_MOST).await;
            Err(BodyError::TooLarge)
        }
        Ok(result) => result,
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// Reads a refused body of `len` bytes to its end, if it is not huge (see
/// the module doc).
async fn drain(mut stream: axum::body::BodyDataStream, len: u64) {
    if len > DRAIN_AT_MOST {
        return;
    }
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_WITHIN, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read > len {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(len) = len {
            h.insert(header::CONTENT_LENGTH, len.into());
        }
        h
    }

    #[tokio::test]
    async fn reads_a_body_within_the_limit() {
        let body = Body::from("hello");
        let got = read_limited(&headers(Some(5)), body, 5, DEFAULT_BODY_TIMEOUT).await;
        assert_eq!(got.unwrap(), "hello");
    }

    #[tokio::test]
    async fn refuses_a_body_over_the_limit_declared_or_not() {
        for declared in [Some(6), None] {
            let h = headers(declared);
            let got = read_limited(&h, Body::from("hello!"), 5, DEFAULT_BODY_TIMEOUT).await;
            assert!(matches!(got, Err(BodyError::TooLarge)), "{declared:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out() {
        // 7 of the 100 bytes it announces, then nothing.
        let sent =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"first"))]);
        let body = Body::from_stream(sent.chain(futures_util::stream::pending()));
        let got = read_limited(&headers(Some(100)), body, 1000, Duration::from_secs(15)).await;
        assert!(matches!(got, Err(BodyError::TimedOut)));
    }
}
