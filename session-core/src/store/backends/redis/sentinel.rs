//! Redis Sentinel: finding the master, and following it after a failover.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};

use super::StoreError;

/// The sentinels, and the connection to the master they named last.
pub(super) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master: std::sync::Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
    /// What the client was built from, for the near cache's own client.
    sentinels: Vec<String>,
    service: String,
    db: Option<i64>,
}

impl Sentinel {
    /// Parses `host:port[,host:port...]/service[/db]`.
    pub(super) fn parse(rest: &str, timeout: Duration) -> Result<Self, StoreError> {
        let (hosts, path) = rest.split_once('/').ok_or_else(|| {
            StoreError::backend("redis+sentinel:// needs /service after the hosts")
        })?;
        let (service, db) = match path.split_once('/') {
            Some((service, db)) => (
                service,
                Some(db.parse::<i64>().map_err(|_| {
                    StoreError::backend(format!("redis+sentinel://: bad database {db:?}"))
                })?),
            ),
            None => (path, None),
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}"))
            .collect();
        let client = master_client(&sentinels, service, db, None)?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            master: std::sync::Mutex::new(None),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            sentinels,
            service: service.to_owned(),
            db,
        })
    }

    /// A client of the master that speaks RESP3, for the near cache's
    /// connection (Redis pushes its invalidations in RESP3 only).
    pub(super) fn resp3_client(&self) -> Result<SentinelClient, StoreError> {
        master_client(
            &self.sentinels,
            &self.service,
            self.db,
            Some(redis::ProtocolVersion::RESP3),
        )
    }

    /// The master's connection, asking the sentinels if there is none.
    pub(super) async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        let mut client = self.client.lock().await;
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        let connection = client
            .get_async_connection_with_config(&self.config)
            .await
            .map_err(StoreError::backend)?;
        *self.master.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// A new connection to the master, not shared with other calls.
    pub(super) async fn own_connection(&self) -> Result<MultiplexedConnection, StoreError> {
        self.client
            .lock()
            .await
            .get_async_connection_with_config(&self.config)
            .await
            .map_err(StoreError::backend)
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the master after an error that may mean a failover.
    pub(super) fn failed(&self, error: &redis::RedisError) {
        if may_mean_failover(error) {
            *self.master.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

fn master_client(
    sentinels: &[String],
    service: &str,
    db: Option<i64>,
    protocol: Option<redis::ProtocolVersion>,
) -> Result<SentinelClient, StoreError> {
    let node = (db.is_some() || protocol.is_some()).then(|| {
        let mut info = redis::RedisConnectionInfo::default();
        if let Some(db) = db {
            info = info.set_db(db);
        }
        if let Some(protocol) = protocol {
            info = info.set_protocol(protocol);
        }
        redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(info)
    });
    SentinelClient::build(
        sentinels.to_vec(),
        service.to_owned(),
        node,
        SentinelServerType::Master,
    )
    .map_err(StoreError::backend)
}

/// Whether an error may mean the master changed: the connection failed (a
/// dropped or refused connection and a timeout are I/O errors too), or the
/// server says it is a replica now, has no master, or is loading.
fn may_mean_failover(error: &redis::RedisError) -> bool {
    error.is_io_error() || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

#[cfg(test)]
mod tests {
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::may_mean_failover;

    #[test]
    fn connection_failures_and_replica_answers_mean_a_failover_others_do_not() {
        let io = |kind| RedisError::from(std::io::Error::new(kind, "on purpose"));
        for kind in [
            std::io::ErrorKind::Other,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::TimedOut,
        ] {
            assert!(may_mean_failover(&io(kind)), "{kind:?}");
        }
        for kind in [
            ServerErrorKind::ReadOnly,
            ServerErrorKind::MasterDown,
            ServerErrorKind::BusyLoading,
        ] {
            let error = RedisError::from((ErrorKind::Server(kind), "on purpose"));
            assert!(may_mean_failover(&error), "{error:?}");
        }
        for kind in [
            ErrorKind::Server(ServerErrorKind::ResponseError),
            ErrorKind::Server(ServerErrorKind::NoScript),
            ErrorKind::AuthenticationFailed,
        ] {
            let error = RedisError::from((kind, "on purpose"));
            assert!(!may_mean_failover(&error), "{error:?}");
        }
    }
}
