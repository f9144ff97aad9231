//! Listing the store's sessions: `SCAN` on a single server, on every
//! master of a cluster.

use redis::Cmd;

use crate::store::StoreError;
#[cfg(feature = "redis-cluster")]
use crate::{StoreKey, store::ScanPage};

/// How many keys one `SCAN` step looks at.
pub(super) const SCAN_COUNT: usize = 500;

pub(super) fn scan_command(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

pub(super) fn scan_cursor(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::backend(format!("not a Redis scan cursor: {text:?}")))
}

/// `text` as a `MATCH` pattern that matches it literally.
pub(super) fn glob_escape(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// One `SCAN` step on one master of a cluster; the cursor is
/// `master:cursor`, masters numbered in address order.
#[cfg(feature = "redis-cluster")]
pub(super) async fn scan_cluster(
    c: &mut redis::cluster_async::ClusterConnection,
    pattern: &str,
    cursor: Option<&str>,
) -> Result<ScanPage, StoreError> {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let (node, at) = match cursor {
        None => (0, 0),
        Some(text) => {
            let (node, at) = text.split_once(':').ok_or_else(|| {
                StoreError::backend(format!("not a cluster scan cursor: {text:?}"))
            })?;
            (
                node.parse::<usize>().map_err(StoreError::backend)?,
                scan_cursor(at)?,
            )
        }
    };
    let nodes: String = redis::from_redis_value(
        c.route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(StoreError::backend)?,
    )
    .map_err(StoreError::backend)?;
    let masters = cluster_masters(&nodes);
    let Some((host, port)) = masters.get(node) else {
        return Ok(ScanPage::default());
    };
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.clone(),
        port: *port,
    });
    let (next, keys): (u64, Vec<String>) = redis::from_redis_value(
        c.route_command(scan_command(at, pattern), routing)
            .await
            .map_err(StoreError::backend)?,
    )
    .map_err(StoreError::backend)?;
    let next = if next != 0 {
        Some(format!("{node}:{next}"))
    } else {
        (node + 1 < masters.len()).then(|| format!("{}:0", node + 1))
    };
    Ok(ScanPage {
        keys: keys.into_iter().map(StoreKey::from_raw).collect(),
        next,
    })
}

/// The addresses of the masters that serve slots, in `CLUSTER NODES`'s
/// answer, sorted.
#[cfg(feature = "redis-cluster")]
pub(super) fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut masters: Vec<(String, u16)> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves = fields.len() > 8;
            if !serves || !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect();
    masters.sort();
    masters
}
