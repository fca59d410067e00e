//! The one way the router talks to Redis: a [`Redis`] handle holds a client, a
//! connection made on first use (and remade after failures, so that the router
//! starts, not ready, while Redis is down), and the time every command may take.
//!
//! The durable queue, the dead-letter and journal streams, the dedup store and the
//! plugins' key-value store each hold one; none of them makes its own connection.
//!
//! A URL may name one server (`redis://`, `rediss://`, `redis+unix://`) or a
//! Redis Cluster (`redis+cluster://host1:7000,host2:7001`, any reachable nodes
//! of it): the cluster client of the `redis` crate routes each command to the
//! master holding its key, follows `MOVED`/`ASK` and retries after a failover.
//! Commands that touch several keys must keep them in one slot there; callers
//! that run commands on several streams at once use [`Redis::run_each`].

use ::redis::aio::ConnectionManager;
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use std::sync::Arc;
use std::time::Duration;

/// Why a [`Redis`] handle could not be made: the URL is refused by the client
/// (unparsable, an unsupported scheme such as `rediss` in a build without TLS, a
/// bad database number, a cluster URL without nodes or with a database...).
#[derive(Debug, thiserror::Error)]
#[error("{url} is not a usable Redis URL: {source}")]
pub struct OpenError {
    /// The URL, password hidden.
    pub url: String,
    /// What the client said.
    pub source: ::redis::RedisError,
}

/// The scheme of a URL naming a Redis Cluster by some of its nodes.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

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

/// A Lua script that Redis is asked to run by its SHA-1 (`EVALSHA`), so that its
/// text is neither sent nor hashed by the server on every call. A server that
/// does not hold it (restarted, a replica that took over, `SCRIPT FLUSH`)
/// answers `NOSCRIPT` without running anything: the caller then sends the call
/// whole ([`Script::command`] with `whole`), which also keeps the script there.
#[derive(Debug)]
pub struct Script {
    text: &'static str,
    sha1: String,
}

impl Script {
    /// The script whose source is `text`.
    pub fn new(text: &'static str) -> Self {
        Self {
            text,
            sha1: ::redis::Script::new(text).get_hash().to_owned(),
        }
    }

    /// `EVALSHA <sha1>`, or `EVAL <text>` when `whole`: the caller adds the
    /// number of keys, the keys and the arguments.
    pub fn command(&self, whole: bool) -> ::redis::Cmd {
        if whole {
            let mut command = ::redis::cmd("EVAL");
            command.arg(self.text);
            command
        } else {
            let mut command = ::redis::cmd("EVALSHA");
            command.arg(&self.sha1);
            command
        }
    }

    /// Whether `error` is the server saying it does not hold the script (and
    /// so ran nothing).
    pub fn is_unknown(error: &CommandError) -> bool {
        error.code() == Some("NOSCRIPT")
    }
}

/// A lazily connected Redis server and the timeout of its commands. Clones share
/// the connection.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    server: Server,
    timeout: Duration,
    /// The URL without its password, for messages.
    shown: String,
}

/// A single server or a cluster, and the connection to it.
enum Server {
    Single {
        client: ::redis::Client,
        conn: ConnectionManager,
    },
    Cluster {
        /// The nodes part of the URL, to make clients with other timeouts.
        nodes: String,
        client: Box<ClusterClient>,
        /// Made on first use; a failed attempt leaves it empty for the next
        /// command to try again, so the router starts while the cluster is down.
        conn: tokio::sync::OnceCell<ClusterConnection>,
    },
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
    /// A handle on the server (or cluster) at `url`; commands time out after
    /// `timeout`. Nothing is connected yet: only the URL is checked.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, OpenError> {
        let shown = redact(url);
        let error = |source| OpenError {
            url: format!("{shown:?}"),
            source,
        };
        let server = match url.strip_prefix(CLUSTER_SCHEME) {
            Some(nodes) => Server::Cluster {
                nodes: nodes.to_owned(),
                client: Box::new(cluster_client(nodes, timeout, timeout).map_err(error)?),
                conn: tokio::sync::OnceCell::new(),
            },
            None => {
                let client = ::redis::Client::open(url).map_err(error)?;
                let conn = lazy_connection(&client, timeout, timeout).map_err(error)?;
                Server::Single { client, conn }
            }
        };
        Ok(Self(Arc::new(Inner {
            server,
            timeout,
            shown,
        })))
    }

    /// A second handle on the same server, with connections of its own, whose
    /// replies may take up to `response` (blocking reads hold their connection,
    /// so they get their own).
    pub fn dedicated(&self, response: Duration) -> Result<Self, CommandError> {
        let timeout = self.0.timeout;
        let server = match &self.0.server {
            Server::Single { client, .. } => Server::Single {
                client: client.clone(),
                conn: lazy_connection(client, timeout, response)?,
            },
            Server::Cluster { nodes, .. } => Server::Cluster {
                nodes: nodes.clone(),
                client: Box::new(cluster_client(nodes, timeout, response)?),
                conn: tokio::sync::OnceCell::new(),
            },
        };
        Ok(Self(Arc::new(Inner {
            server,
            timeout: response,
            shown: self.0.shown.clone(),
        })))
    }

    /// Whether this handle speaks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0.server, Server::Cluster { .. })
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
        let timeout = self.0.timeout;
        let run = async {
            let value = match &self.0.server {
                Server::Single { conn, .. } => command.query_async(&mut conn.clone()).await?,
                Server::Cluster { client, conn, .. } => {
                    command
                        .query_async(&mut connected(client, conn).await?)
                        .await?
                }
            };
            Ok(value)
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Err(CommandError::Timeout(timeout)))
    }

    /// Runs `pipeline` (its commands in one round trip), failing after the
    /// timeout. On a cluster, its commands must keep to one slot.
    pub async fn run_pipeline<T: ::redis::FromRedisValue>(
        &self,
        pipeline: &::redis::Pipeline,
    ) -> Result<T, CommandError> {
        let timeout = self.0.timeout;
        let run = async {
            let value = match &self.0.server {
                Server::Single { conn, .. } => pipeline.query_async(&mut conn.clone()).await?,
                Server::Cluster { client, conn, .. } => {
                    pipeline
                        .query_async(&mut connected(client, conn).await?)
                        .await?
                }
            };
            Ok(value)
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Err(CommandError::Timeout(timeout)))
    }

    /// Runs `commands`, each on its own key's server: in one round trip on a
    /// single server, at once on the masters of a cluster (which cannot take a
    /// pipeline across slots). Fails, after the timeout at most, if any fails.
    pub async fn run_each<T: ::redis::FromRedisValue>(
        &self,
        commands: &[::redis::Cmd],
    ) -> Result<Vec<T>, CommandError> {
        if self.is_cluster() {
            futures_util::future::try_join_all(commands.iter().map(|c| self.run(c))).await
        } else {
            let mut pipeline = ::redis::pipe();
            for command in commands {
                pipeline.add_command(command.clone());
            }
            self.run_pipeline(&pipeline).await
        }
    }
}

/// The connection to the cluster of `client`, made now if `conn` has none yet.
async fn connected(
    client: &ClusterClient,
    conn: &tokio::sync::OnceCell<ClusterConnection>,
) -> Result<ClusterConnection, CommandError> {
    let conn = conn
        .get_or_try_init(|| client.get_async_connection())
        .await?;
    Ok(conn.clone())
}

/// A client of the cluster whose nodes `nodes` lists (`host:port`, comma
/// separated, with `user:password@` before the first when the cluster asks for
/// credentials).
fn cluster_client(
    nodes: &str,
    connect: Duration,
    response: Duration,
) -> ::redis::RedisResult<ClusterClient> {
    let invalid = |detail: &str| {
        ::redis::RedisError::from((
            ::redis::ErrorKind::InvalidClientConfig,
            "invalid cluster URL",
            detail.to_owned(),
        ))
    };
    let nodes = nodes.trim_end_matches('/');
    if nodes.contains('/') {
        return Err(invalid(
            "a cluster has no databases: nothing may follow the nodes",
        ));
    }
    let (auth, nodes) = match nodes.rsplit_once('@') {
        Some((auth, nodes)) => (format!("{auth}@"), nodes),
        None => (String::new(), nodes),
    };
    let urls: Vec<String> = nodes
        .split(',')
        .map(|node| format!("redis://{auth}{}", node.trim()))
        .collect();
    if nodes.trim().is_empty() || urls.iter().any(|u| u.ends_with("//") || u.ends_with('@')) {
        return Err(invalid("name at least one node, as host:port"));
    }
    ClusterClient::builder(urls)
        .connection_timeout(connect)
        .response_timeout(response)
        // A failover takes a few seconds (cluster-node-timeout plus the
        // election); the caller's timeout bounds how long a command waits.
        .retries(32)
        .min_retry_wait(20)
        .max_retry_wait(500)
        .build()
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
    async fn a_cluster_url_names_its_nodes_and_nothing_else() {
        let redis = Redis::open(
            "redis+cluster://u:hunter2@127.0.0.1:7000,127.0.0.1:7001",
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert!(redis.is_cluster());
        assert!(!redis.url().contains("hunter2"), "{}", redis.url());
        assert!(
            !Redis::open("redis://127.0.0.1:7000", DEFAULT_TIMEOUT)
                .unwrap()
                .is_cluster()
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h:1,",
            "redis+cluster://h:1/0",
        ] {
            let error = Redis::open(bad, DEFAULT_TIMEOUT).unwrap_err().to_string();
            assert!(error.contains("cluster"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn debug_and_errors_hide_the_password() {
        let redis = Redis::open("redis://u:hunter2@127.0.0.1:1/0", DEFAULT_TIMEOUT).unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
        let error = Redis::open("rediss://u:hunter2@127.0.0.1:1/x", DEFAULT_TIMEOUT).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
