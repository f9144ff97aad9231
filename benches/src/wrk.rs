//! Drives `wrk` (Debian's package): a Lua script that sends the primed
//! cookies round robin, and a machine-readable summary line out of it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One measurement of one route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measurement {
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    /// Latency percentiles, in microseconds.
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    /// Responses that were not 2xx/3xx.
    pub(crate) bad_status: u64,
    /// Connect, read, write errors and timeouts.
    pub(crate) socket_errors: u64,
}

/// How the load generator runs.
#[derive(Clone, Debug)]
pub(crate) struct Load {
    pub(crate) connections: u32,
    /// The CPU to pin `wrk` to, if pinning.
    pub(crate) cpu: Option<usize>,
}

/// Fails with a clear message unless `wrk` can be run.
pub(crate) fn check_installed() -> Result<String, String> {
    match Command::new("wrk").arg("--version").output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(text.lines().next().unwrap_or("wrk").trim().to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "wrk is not installed: the benchmark uses it as its load generator. \
             Install it with `apt-get update && apt-get install -y wrk` (Debian package `wrk`)."
                .to_owned(),
        ),
        Err(e) => Err(format!("could not run wrk: {e}")),
    }
}

/// Writes the script that requests `path` with `cookies` in turn (no
/// cookie at all when the list is empty) and prints a summary line.
pub(crate) fn write_script(file: &Path, path: &str, cookies: &[String]) -> std::io::Result<()> {
    let mut lua = String::from("local cookies = {\n");
    for cookie in cookies {
        // Cookie values are base64url or similar: no quote or backslash,
        // but escape anyway.
        let escaped = cookie.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(lua, "  \"{escaped}\",");
    }
    let _ = write!(
        lua,
        r#"}}
local path = "{path}"
local i = 0
local plain = wrk.format("GET", path)

request = function()
  if #cookies == 0 then return plain end
  i = i + 1
  if i > #cookies then i = 1 end
  return wrk.format("GET", path, {{ ["Cookie"] = cookies[i] }})
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SESSION_BENCH %d %d %d %d %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50.0), latency:percentile(99.0),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#
    );
    std::fs::write(file, lua)
}

/// Runs `wrk` against `url` for `duration` with `script`.
pub(crate) fn run(
    load: &Load,
    script: &Path,
    url: &str,
    duration: Duration,
) -> Result<Measurement, String> {
    let secs = duration.as_secs().max(1).to_string();
    let connections = load.connections.to_string();
    let wrk_args = [
        "-t1",
        "-c",
        &connections,
        "-d",
        &format!("{secs}s"),
        "--timeout",
        "5s",
        "--latency",
        "-s",
        &script.to_string_lossy(),
        url,
    ];
    let mut command = match load.cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg("wrk");
            c
        }
        None => Command::new("wrk"),
    };
    command.args(wrk_args);
    let out = command
        .output()
        .map_err(|e| format!("could not run wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&stdout).ok_or_else(|| format!("no summary line in wrk's output:\n{stdout}"))
}

fn parse(stdout: &str) -> Option<Measurement> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SESSION_BENCH "))?;
    let n: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [
        requests,
        duration_us,
        p50_us,
        p99_us,
        bad_status,
        socket_errors,
    ] = n[..]
    else {
        return None;
    };
    Some(Measurement {
        requests,
        rps: requests as f64 / (duration_us.max(1) as f64 / 1e6),
        p50_us,
        p99_us,
        bad_status,
        socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line() {
        let m = parse("Running 1s test\nSESSION_BENCH 1000 500000 120 900 2 1\n").unwrap();
        assert_eq!(m.requests, 1000);
        assert!((m.rps - 2000.0).abs() < 1e-6);
        assert_eq!(
            (m.p50_us, m.p99_us, m.bad_status, m.socket_errors),
            (120, 900, 2, 1)
        );
        assert!(parse("nothing").is_none());
    }
}
