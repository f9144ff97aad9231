//! Listing a server's keys: `lru_crawler metadump all`, memcached's own
//! dump of its items' metadata (memcached 1.4.31 or later).
//!
//! Whether an item is live is judged by memcached's clock, as memcached
//! judges it on a read, not by ours: memcached counts time from its start,
//! taken from another clock than its ticks, so its "now" can be two seconds
//! away from the wall clock's. A session created a second ago with a
//! one-second lifetime is live to memcached while its `exp=` is already
//! past by the wall clock.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// How often a dump is asked for again while the crawler is busy.
const BUSY_RETRIES: u32 = 50;

/// The keys of the live items of the server at `address`, url-decoded, as
/// memcached lists them.
pub(super) async fn live_keys(address: &str) -> std::io::Result<Vec<String>> {
    let stream = TcpStream::connect(address).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    for _ in 0..BUSY_RETRIES {
        write.write_all(b"stats\r\n").await?;
        let now = server_time(&mut lines, address).await?;
        write.write_all(b"lru_crawler metadump all\r\n").await?;
        let mut keys = Vec::new();
        loop {
            let Some(line) = lines.next_line().await? else {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            };
            let line = line.trim_end_matches('\r');
            if line == "END" {
                return Ok(keys);
            }
            if line.starts_with("BUSY") {
                break;
            }
            if line.starts_with("ERROR") || line.starts_with("CLIENT_ERROR") {
                return Err(std::io::Error::other(format!(
                    "memcached {address} cannot list its keys (lru_crawler metadump): {line}"
                )));
            }
            if let Some(key) = live_key(line, now) {
                keys.push(key);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(std::io::Error::other(format!(
        "memcached {address}: the LRU crawler stayed busy"
    )))
}

/// The server's current Unix time (`STAT time`), from the answer to
/// `stats`.
async fn server_time(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
    address: &str,
) -> std::io::Result<u64> {
    let mut time = None;
    loop {
        let Some(line) = lines.next_line().await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let line = line.trim_end_matches('\r');
        if line == "END" {
            break;
        }
        if let Some(t) = line.strip_prefix("STAT time ") {
            time = t.parse().ok();
        }
    }
    time.ok_or_else(|| {
        std::io::Error::other(format!("memcached {address} did not say its time (stats)"))
    })
}

/// The key of one dump line (`key=… exp=… …`) if it has not expired by
/// `now`, the server's Unix time (`exp=-1`: never expires).
fn live_key(line: &str, now: u64) -> Option<String> {
    let mut key = None;
    let mut live = false;
    for field in line.split(' ') {
        if let Some(k) = field.strip_prefix("key=") {
            key = Some(url_decode(k)?);
        } else if let Some(exp) = field.strip_prefix("exp=") {
            live = exp == "-1" || exp.parse::<u64>().is_ok_and(|exp| exp > now);
        }
    }
    key.filter(|_| live)
}

/// `%XX` escapes undone.
fn url_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2)?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lines_give_live_keys() {
        let line = "key=session%3Aab%25 exp=200 la=100 cas=1 fetch=no cls=1 size=68";
        assert_eq!(live_key(line, 150).as_deref(), Some("session:ab%"));
        assert_eq!(live_key(line, 200), None, "expired");
        let forever = "key=k exp=-1 la=1 cas=1 fetch=no cls=1 size=1";
        assert_eq!(live_key(forever, u64::MAX).as_deref(), Some("k"));
        assert_eq!(live_key("key=bad%4 exp=-1", 0), None, "a cut escape");
    }
}
