//! Trimming: removing what every group has acknowledged, and publishing the
//! stream's length and pending count.

use super::reply::{StreamId, map, text};
use super::{QueueError, RedisQueue, pause};
use redis::{Value, cmd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl RedisQueue {
    /// Removes what every group has acknowledged, and publishes the stream's length
    /// and pending count.
    pub(super) async fn trimmer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            if let Err(e) = self.trim().await {
                tracing::debug!(error = %e, "trimming the stream failed");
            }
            pause(&mut stop, Duration::from_millis(500)).await;
        }
    }

    async fn trim(&self) -> Result<(), QueueError> {
        let (mut length, mut pending) = (0, 0);
        for stream in self.streams() {
            match self.trim_stream(&stream).await {
                Ok((l, p)) => {
                    length += l;
                    pending += p;
                }
                // A partition that no event went to yet has no stream.
                Err(QueueError::Redis(e)) if e.to_string().contains("no such key") => {}
                Err(e) => return Err(e),
            }
        }
        let metrics = crate::metrics::metrics();
        metrics.queue_length.set(length);
        metrics
            .queue_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Trims one stream; returns its length and pending count.
    async fn trim_stream(&self, stream: &str) -> Result<(i64, u64), QueueError> {
        let groups: Value = self.run(cmd("XINFO").arg("GROUPS").arg(stream)).await?;
        let Value::Array(groups) = groups else {
            return Ok((0, 0));
        };
        let mut floor: Option<StreamId> = None;
        let mut pending_total = 0;
        for group in &groups {
            let fields = map(group);
            let name = fields.get("name").cloned().unwrap_or_default();
            let pending: u64 = fields
                .get("pending")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pending_total += pending;
            // Everything up to the last delivered id is acknowledged unless pending.
            let mut keep = fields
                .get("last-delivered-id")
                .and_then(|id| StreamId::parse(id))
                .map(StreamId::next);
            if pending > 0 {
                let summary: Value = self.run(cmd("XPENDING").arg(stream).arg(&name)).await?;
                if let Value::Array(parts) = summary
                    && let Some(min) = parts
                        .get(1)
                        .and_then(text)
                        .and_then(|id| StreamId::parse(&id))
                {
                    keep = Some(keep.map_or(min, |k| k.min(min)));
                }
            }
            floor = match (floor, keep) {
                (Some(f), Some(k)) => Some(f.min(k)),
                (None, k) => k,
                (f, None) => f,
            };
        }
        if let Some(floor) = floor {
            self.run::<u64>(cmd("XTRIM").arg(stream).arg("MINID").arg(floor.to_string()))
                .await?;
        }
        let length: i64 = self.run(cmd("XLEN").arg(stream)).await?;
        Ok((length, pending_total))
    }
}
