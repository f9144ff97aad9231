//! The results: the table, the targets of issue 6, the cost of the user
//! index, the machine, and the section of BENCHMARKS.md they go in.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use session_bench::Variant;

use crate::wrk::Measurement;

/// Marks the part of BENCHMARKS.md a run rewrites; the rest is left alone.
pub(crate) const BEGIN: &str = "<!-- session-bench:results:begin -->";
pub(crate) const END: &str = "<!-- session-bench:results:end -->";

/// One measured row.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) variant: Variant,
    pub(crate) route: &'static str,
    pub(crate) m: Measurement,
    /// The server's CPU time per request, in microseconds.
    pub(crate) server_cpu_us: Option<f64>,
    /// CPUs' worth of time other processes used during the measurement.
    pub(crate) others: f64,
}

impl Row {
    /// Of two measurements of one variant and route: the one less disturbed
    /// by other processes, or if both were about as quiet, the faster.
    pub(crate) fn better_than(&self, other: &Row) -> bool {
        if (self.others - other.others).abs() > 0.1 {
            self.others < other.others
        } else {
            self.m.rps > other.m.rps
        }
    }
}

/// All rows of one run.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) rows: Vec<Row>,
}

impl Results {
    /// Adds `row`, or replaces the row of the same variant and route if
    /// `row` served more requests per second (the best of the rounds).
    pub(crate) fn keep_best(&mut self, row: Row) {
        match self
            .rows
            .iter_mut()
            .find(|r| r.variant == row.variant && r.route == row.route)
        {
            Some(old) if row.better_than(old) => *old = row,
            Some(_) => {}
            None => self.rows.push(row),
        }
    }

    fn row(&self, variant: Variant, route: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.variant == variant && r.route == route)
    }

    fn find(&self, variant: Variant, route: &str) -> Option<&Measurement> {
        self.row(variant, route).map(|r| &r.m)
    }

    /// `none`'s server CPU per request over the row's.
    fn cpu_ratio(&self, row: &Row) -> Option<f64> {
        let limit = self.row(Variant::None, row.route)?.server_cpu_us?;
        Some(limit / row.server_cpu_us?)
    }

    /// Requests per second of `variant` on `route` over those of `none`.
    pub(crate) fn ratio(&self, variant: Variant, route: &str) -> Option<f64> {
        let limit = self.find(Variant::None, route)?;
        let m = self.find(variant, route)?;
        Some(m.rps / limit.rps)
    }

    /// The markdown table of every row.
    pub(crate) fn table(&self) -> String {
        let mut out = String::from(
            "| variant | route | requests/s | p50 (ms) | p99 (ms) | ratio to `none` | server CPU (µs/req) | CPU ratio | errors | others (% CPU) |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for row in &self.rows {
            let ratio = self
                .ratio(row.variant, row.route)
                .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
            let errors = row.m.bad_status + row.m.socket_errors;
            let cpu = row
                .server_cpu_us
                .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1}"));
            let cpu_ratio = self
                .cpu_ratio(row)
                .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
            let _ = writeln!(
                out,
                "| {} | `{}` | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} |",
                row.variant,
                row.route,
                row.m.rps,
                ms(row.m.p50_us),
                ms(row.m.p99_us),
                ratio,
                cpu,
                cpu_ratio,
                errors,
                row.others * 100.0
            );
        }
        out
    }

    /// The targets of issues 6 and 13, each with what this run measured.
    pub(crate) fn targets(&self) -> String {
        let mut out = String::from("| target | measured | met |\n| --- | --- | --- |\n");
        let ratio_targets = [
            (Variant::OursMemory, "/index", 0.95, "memory store, read"),
            (Variant::OursMemory, "/visits", 0.90, "memory store, write"),
            (Variant::OursRedis, "/index", 0.85, "Redis store, read"),
            (Variant::OursRedis, "/visits", 0.50, "Redis store, write"),
            (
                Variant::OursRedisCached,
                "/index",
                0.85,
                "Redis with the near cache, read",
            ),
            (
                Variant::OursRedisCached,
                "/visits",
                0.50,
                "Redis with the near cache, write",
            ),
            (
                Variant::OursPostgresCached,
                "/index",
                0.50,
                "PostgreSQL with the near cache, read",
            ),
            (Variant::OursMemory, "/", 0.85, "memory store, new session"),
            (Variant::OursSqlite, "/visits", 0.25, "SQLite, write"),
            (
                Variant::OursFilesystem,
                "/visits",
                0.25,
                "filesystem, write",
            ),
        ];
        for (variant, route, goal, what) in ratio_targets {
            let cpu = self
                .row(variant, route)
                .and_then(|row| self.cpu_ratio(row))
                .map_or_else(String::new, |c| format!(" (CPU ratio {c:.2})"));
            let (measured, met) = match self.ratio(variant, route) {
                Some(r) => (format!("{r:.2}{cpu}"), yes_no(r >= goal)),
                None => ("not measured".to_owned(), "n/a"),
            };
            let _ = writeln!(
                out,
                "| {what} (`{variant}` `{route}`) >= {goal:.2} of `none` | {measured} | {met} |"
            );
        }
        for route in ["/index", "/visits", "/"] {
            let Some(limit) = self.find(Variant::ActixRedis, route) else {
                continue;
            };
            // The stores as the quickstart uses them: the `-users` variants
            // (the same stores, sessions bound to users) are judged below.
            let ours: Vec<&Row> = self
                .rows
                .iter()
                .filter(|r| {
                    r.route == route
                        && r.variant.name().starts_with("ours-")
                        && !r.variant.binds_users()
                })
                .collect();
            if ours.is_empty() {
                continue;
            }
            let worse: Vec<String> = ours
                .iter()
                .filter(|r| r.m.p99_us > limit.p99_us)
                .map(|r| format!("`{}` {} ms", r.variant, ms(r.m.p99_us)))
                .collect();
            let worst = ours.iter().map(|r| r.m.p99_us).max().unwrap_or(0);
            let measured = if worse.is_empty() {
                format!(
                    "worst of ours {} ms, `actix-redis` {} ms",
                    ms(worst),
                    ms(limit.p99_us)
                )
            } else {
                format!(
                    "`actix-redis` {} ms; over it: {}",
                    ms(limit.p99_us),
                    worse.join(", ")
                )
            };
            let _ = writeln!(
                out,
                "| p99 of every store of ours on `{route}` <= `actix-redis`'s | {measured} | {} |",
                yes_no(worse.is_empty())
            );
        }
        out
    }

    /// What the user index costs: requests/s of each `-users` variant over
    /// the same store without it, on `/login` and `/index`, same run.
    pub(crate) fn users(&self) -> String {
        self.compare(
            "The user index (sessions bound to users with `bind_user` at `/` and `/login`): requests/s with it over without it, same store, same run. `/login` pays for writing the user's index (extra store calls at login only); `/index` reads a bound session, which costs no extra store call, so it should stay near 1.00. `CPU ratio` is the same for the server's CPU per request.",
            Variant::without_users,
            &["/login", "/index"],
        )
    }

    /// What sealing values at rest costs: requests/s of each `-sealed`
    /// variant over the same store without it, same run.
    pub(crate) fn sealed(&self) -> String {
        self.compare(
            "Encryption at rest (`SESSION_ENCRYPT_AT_REST=true`): requests/s with it over without it, same store, same run. A read opens each value (a key derived with HKDF, then XChaCha20-Poly1305); a write seals each value it writes. `CPU ratio` is the same for the server's CPU per request.",
            Variant::without_sealing,
            &["/index", "/visits", "/", "/login"],
        )
    }

    /// What moving between stores costs once the sessions are in the new
    /// one: requests/s of each `-migrating` variant over the same store
    /// alone, same run.
    pub(crate) fn migrating(&self) -> String {
        self.compare(
            "Moving to another store (`SESSION_MIGRATE_FROM`), once the sessions are in the new store: requests/s with it over the new store alone, same run. A read of a copied session, a change and a new session cost what they cost without it; an end (`/login` moves the session to a new id) takes the move lock and ends the session in both stores. `CPU ratio` is the same for the server's CPU per request.",
            Variant::without_migrating,
            &["/index", "/visits", "/", "/login"],
        )
    }

    /// A table of requests/s of each variant `base_of` names a base for,
    /// over that base, on `routes`.
    fn compare(
        &self,
        title: &str,
        base_of: fn(Variant) -> Option<Variant>,
        routes: &[&str],
    ) -> String {
        let mut out = format!("{title}\n\n| ratio |");
        for route in routes {
            let _ = write!(out, " `{route}` |");
        }
        out.push_str("\n| --- |");
        out.push_str(&" ---: |".repeat(routes.len()));
        out.push('\n');
        for variant in Variant::ALL {
            let Some(base) = base_of(variant) else {
                continue;
            };
            let cell = |route: &str| match (self.row(variant, route), self.row(base, route)) {
                (Some(with), Some(without)) => {
                    let cpu = match (with.server_cpu_us, without.server_cpu_us) {
                        (Some(w), Some(wo)) => format!(" (CPU ratio {:.2})", wo / w),
                        _ => String::new(),
                    };
                    format!("{:.2}{cpu}", with.m.rps / without.m.rps)
                }
                _ => "not measured".to_owned(),
            };
            let _ = write!(out, "| `{variant}` / `{base}` |");
            for route in routes {
                let _ = write!(out, " {} |", cell(route));
            }
            out.push('\n');
        }
        out
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "**no**" }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// What a reader needs to know about the machine a run was made on.
pub(crate) fn machine(wrk_version: &str, redis_version: Option<&str>) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let nproc = command_line("nproc", &[]).unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let rustc = command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    let tree = command_line(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    )
    .map_or_else(
        || "unknown".to_owned(),
        |commit| {
            let dirty = Command::new("git")
                .args([
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "diff",
                    "--quiet",
                    "HEAD",
                    "--",
                ])
                .args(["../session-core", "../session-actix"])
                .status()
                .is_ok_and(|s| !s.success());
            if dirty {
                format!("{commit}, with uncommitted changes to the library")
            } else {
                commit
            }
        },
    );
    let mut out = format!(
        "- CPU: {cpu}, `nproc` = {nproc}\n- Linux {kernel}\n- {rustc}, release build of commit {tree}\n- load generator: {wrk_version}\n"
    );
    if let Some(v) = redis_version {
        let _ = writeln!(out, "- Redis {v} on 127.0.0.1:6379 (not pinned)");
    }
    out
}

/// The date and time now, as `date -u` tells it.
pub(crate) fn now() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".to_owned())
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// Puts `section` between the markers of the file at `path`, creating the
/// file (with `skeleton` around the markers) if it does not exist.
pub(crate) fn write_section(path: &Path, section: &str, skeleton: &str) -> std::io::Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => skeleton.to_owned(),
        Err(e) => return Err(e),
    };
    let section = format!("{}\n\n", section.trim_end());
    let text = match (current.find(BEGIN), current.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{BEGIN}\n{section}{}", &current[..begin], &current[end..])
        }
        _ => format!("{}\n{BEGIN}\n{section}{END}\n", current.trim_end()),
    };
    std::fs::write(path, text)
}
