//! The one way the router talks to Redis: a [`Redis`] handle holds a client, a
//! connection made on first use (and remade after failures, so that the router
//! starts, not ready, while Redis is down), and the time every command may take.
//!
//! The durable queue, the dead-letter and journal streams, the dedup store and the
//! plugins' key-value store each hold one; none of them makes its own connection.

use ::redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// Why a [`Redis`] handle could not be made: the URL is refused by the client
/// (unparsable, an unsupported scheme such as `rediss` in a build without TLS, a
/// bad database number...).
#[derive(Debug, thiserror::Error)]
#[error("{url} is not a usable Redis URL: {source}")]
pub struct OpenError {
    /// The URL, password hidden.
    pub url: String,
    /// What the client said.
    pub source: ::redis::RedisError,
}

/// Why a command did not succeed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommandError {
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

impl CommandError {
    /// The error code Redis answered with (`NOGROUP`, `BUSYGROUP`...), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Redis(e) => e.code(),
            Self::Timeout(_) => None,
        }
    }
}

/// A lazily connected Redis server and the timeout of its commands. Clones share
/// the connection.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    client: ::redis::Client,
    conn: ConnectionManager,
    timeout: Duration,
    /// The URL without its password, for messages.
    shown: String,
}

/// The default time a command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.0.shown)
            .field("timeout", &self.0.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle on the server at `url`; commands time out after `timeout`. Nothing
    /// is connected yet: only the URL is checked.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, OpenError> {
        let shown = redact(url);
        let error = |source| OpenError {
            url: format!("{shown:?}"),
            source,
        };
        let client = ::redis::Client::open(url).map_err(error)?;
        let conn = lazy_connection(&client, timeout, timeout).map_err(error)?;
        Ok(Self(Arc::new(Inner {
            client,
            conn,
            timeout,
            shown,
        })))
    }

    /// A second connection to the same server, whose replies may take up to
    /// `response` (blocking reads hold their connection, so they get their own).
    pub fn dedicated(&self, response: Duration) -> Result<ConnectionManager, CommandError> {
        Ok(lazy_connection(&self.0.client, self.0.timeout, response)?)
    }

    /// The time a command may take.
    pub fn timeout(&self) -> Duration {
        self.0.timeout
    }

    /// The URL without its password, for messages.
    pub fn url(&self) -> &str {
        &self.0.shown
    }

    /// Runs `command`, failing after the timeout.
    pub async fn run<T: ::redis::FromRedisValue>(
        &self,
        command: &::redis::Cmd,
    ) -> Result<T, CommandError> {
        let mut conn = self.0.conn.clone();
        match tokio::time::timeout(self.0.timeout, command.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(CommandError::Timeout(self.0.timeout)),
        }
    }

    /// Runs `pipeline` (its commands in one round trip), failing after the timeout.
    pub async fn run_pipeline<T: ::redis::FromRedisValue>(
        &self,
        pipeline: &::redis::Pipeline,
    ) -> Result<T, CommandError> {
        let mut conn = self.0.conn.clone();
        match tokio::time::timeout(self.0.timeout, pipeline.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(CommandError::Timeout(self.0.timeout)),
        }
    }
}

/// A connection made on first use and remade after failures. Replies time out
/// after `response`.
fn lazy_connection(
    client: &::redis::Client,
    connect: Duration,
    response: Duration,
) -> ::redis::RedisResult<ConnectionManager> {
    let config = ::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// `url` with its password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    // `scheme://user:password@host...`: the password is between the first `:`
    // after `//` and the last `@` before the host.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact("redis+unix:///run/redis.sock"),
            "redis+unix:///run/redis.sock"
        );
    }

    #[tokio::test]
    async fn debug_and_errors_hide_the_password() {
        let redis = Redis::open("redis://u:hunter2@127.0.0.1:1/0", DEFAULT_TIMEOUT).unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
        let error = Redis::open("rediss://u:hunter2@127.0.0.1:1/x", DEFAULT_TIMEOUT).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
