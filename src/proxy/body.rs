//! Reading a body the rule needs, after the pre-body decision allowed the caller: JSON media
//! types only, bounded by size, by time (`listen.body_read_timeout`) and by the connection's
//! buffered-body budget, then parsed strictly once for the decision and the created-works
//! overlay. The bytes are forwarded exactly as read.

use std::sync::Arc;
use std::time::Duration;

use crate::listener::ClientBody;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::{BodyError, media, strict};

/// A read body: the parsed document, the bytes to forward, and the share of the connection's
/// budget it holds until the request is done.
pub(super) struct ReadBody {
    pub json: serde_json::Value,
    pub bytes: Bytes,
    pub _budget: Option<OwnedSemaphorePermit>,
}

/// Limits on one read.
pub(super) struct Bounds<'a> {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Bytes the connection may still buffer across its concurrent requests (HTTP/2 streams).
    pub budget: &'a Arc<Semaphore>,
}

pub(super) async fn read(
    headers: &HeaderMap,
    body: ClientBody,
    bounds: Bounds<'_>,
) -> Result<ReadBody, BodyError> {
    media::check_json(headers)?;
    let (bytes, permit) = tokio::time::timeout(bounds.timeout, collect(body, &bounds))
        .await
        .map_err(|_| BodyError::Timeout)??;
    let json = strict::parse(&bytes)?;
    Ok(ReadBody {
        json,
        bytes,
        _budget: permit,
    })
}

/// Collects frames, taking budget for each before buffering it. Budget is taken without
/// waiting: streams of one connection waiting on each other's budget could wait forever.
async fn collect(
    mut body: ClientBody,
    bounds: &Bounds<'_>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    let mut buffer = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(Box::new(e)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers decide nothing
        };
        if data.is_empty() {
            continue;
        }
        if buffer.len() + data.len() > bounds.max_bytes {
            return Err(BodyError::TooLarge);
        }
        let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
        let permit = bounds
            .budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyError::ConnectionBudget)?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        buffer.extend_from_slice(&data);
    }
    Ok((buffer.freeze(), held))
}
