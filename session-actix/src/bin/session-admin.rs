//! `session-admin`: operator commands on the session store that the
//! `SESSION_*` configuration names (the environment, or `--config FILE`).
//!
//! `show` reads the cookie's value from standard input or from a file,
//! never from its arguments: other local users see a command's arguments
//! in the process list, and the shell keeps them in its history.
//!
//! Exit codes: 0 done; 1 the store failed; 2 bad usage or configuration
//! (the message names the key), or a store that cannot do it (listing the
//! sessions of Flask-Session's layout); 3 `migrate` finished but some sessions
//! failed to copy; 4 `show` found no live session for the cookie.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use session_actix::SessionConfig;
use session_actix::admin::{Admin, AdminError, MigrateEvent};

/// Operator commands on the session store.
#[derive(Debug, Parser)]
#[command(
    name = "session-admin",
    version,
    about = "Operator commands on the session store"
)]
struct Cli {
    /// Read the SESSION_* settings from this file (`KEY=VALUE` lines, as a
    /// `.env` file) instead of the environment.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Count the live sessions and the users' indexes.
    Count,
    /// Show the session a cookie value names, its values pretty-printed.
    /// The value, as the browser holds it, is read from standard input
    /// (one line), never from the command line, where other local users
    /// would see it in the process list and the shell would keep it in
    /// its history.
    #[command(after_help = "Examples:\n  \
        session-admin show < cookie.txt\n  \
        session-admin show --cookie-file cookie.txt\n  \
        session-admin show            (then paste the value and press Enter)")]
    Show {
        /// Read the cookie's value from this file (its first line) instead
        /// of standard input; `-` is standard input.
        #[arg(long, value_name = "PATH")]
        cookie_file: Option<PathBuf>,
        /// Refused: a cookie given here would show in the process list and
        /// the shell's history. Taken only to say so (it may start with
        /// `-`: ids are base64url).
        #[arg(hide = true, allow_hyphen_values = true)]
        cookie: Option<String>,
    },
    /// End every session of a user (sessions bound with `Users`).
    RevokeUser {
        /// The user, as the app names them at login.
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Delete expired sessions now (SQL, files, memory; Redis, memcached
    /// and MongoDB expire them by themselves).
    Cleanup,
    /// Move every live session, with the lifetime it has left, to the
    /// store the app now runs on, while it runs with the old store as its
    /// SESSION_MIGRATE_FROM (README: "Moving to another store"). Users stay
    /// logged in: sessions keep their keys.
    Migrate {
        /// The old store's SESSION_* settings file (default: the target's
        /// SESSION_MIGRATE_FROM, which it must match).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The SESSION_* settings the app runs with, SESSION_MIGRATE_FROM
        /// included (default: --config, or the environment).
        #[arg(long, value_name = "FILE")]
        to: Option<PathBuf>,
    },
}

/// Exit codes a script can rely on.
#[derive(Clone, Copy, Debug)]
enum Exit {
    Done = 0,
    StoreFailed = 1,
    BadConfig = 2,
    SomeFailed = 3,
    NotFound = 4,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("session-admin: cannot start: {error}");
            return ExitCode::from(Exit::StoreFailed as u8);
        }
    };
    let exit = match runtime.block_on(run(&cli)) {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("session-admin: {error}");
            match error {
                AdminError::Config(_)
                | AdminError::Mismatch { .. }
                | AdminError::NoStore(_)
                | AdminError::Store(session_actix::store::StoreError::Unsupported(_)) => {
                    Exit::BadConfig
                }
                _ => Exit::StoreFailed,
            }
        }
    };
    ExitCode::from(exit as u8)
}

async fn run(cli: &Cli) -> Result<Exit, AdminError> {
    let open = async |file: Option<&Path>| -> Result<Admin, AdminError> {
        let config = match file.or(cli.config.as_deref()) {
            Some(path) => read_config(path)?,
            None => SessionConfig::from_env()?,
        };
        Ok(Admin::open(&config).await?)
    };
    match &cli.command {
        Command::Count => {
            let admin = open(None).await?;
            let bar = spinner("listing sessions");
            let counts = admin.count(|n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", json(&counts));
            } else {
                println!("sessions:    {}", counts.sessions);
                println!("users:       {}", counts.users);
                println!("login notes: {}", counts.login_notes);
            }
        }
        Command::Show {
            cookie_file,
            cookie,
        } => {
            if cookie.is_some() {
                eprintln!(
                    "session-admin: show does not take the cookie as an argument: other local \
                     users see arguments in the process list, and the shell keeps them in its \
                     history. Give it on standard input (session-admin show < cookie.txt, or \
                     paste it and press Enter) or in a file (--cookie-file PATH)"
                );
                return Ok(Exit::BadConfig);
            }
            let cookie = match read_cookie(cookie_file.as_deref()) {
                Ok(cookie) => cookie,
                Err(message) => {
                    eprintln!("session-admin: {message}");
                    return Ok(Exit::BadConfig);
                }
            };
            let admin = open(None).await?;
            let Some(shown) = admin.show(&cookie).await? else {
                eprintln!(
                    "session-admin: no live session for this cookie (expired, ended, or not a \
                     valid cookie for this configuration)"
                );
                return Ok(Exit::NotFound);
            };
            if cli.json {
                println!("{}", json(&shown));
            } else {
                println!("key:        {}", shown.key);
                if let Some(secs) = shown.expires_in_secs {
                    println!("expires in: {}", human(Duration::from_secs(secs)));
                }
                if let Some(ms) = shown.created_at_ms {
                    println!("created at: {ms} (ms since the epoch)");
                }
                println!("values:");
                for (name, value) in &shown.values {
                    let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                    println!("  {name} = {}", pretty.replace('\n', "\n    "));
                }
            }
        }
        Command::RevokeUser { user } => {
            let ended = open(None).await?.revoke_user(user).await?;
            if cli.json {
                println!("{{\"ended\":{ended}}}");
            } else {
                println!("{ended} sessions of {user:?} ended");
            }
        }
        Command::Cleanup => {
            let bar = spinner("deleting expired sessions");
            let purged = open(None).await?.cleanup().await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{{\"deleted\":{purged}}}");
            } else {
                println!("{purged} expired sessions deleted");
            }
        }
        Command::Migrate { from, to } => {
            let mut to = match to.as_deref().or(cli.config.as_deref()) {
                Some(path) => read_config(path)?,
                None => SessionConfig::from_env()?,
            };
            // Sessions leave the old store as they move: only an app that
            // reads through to it (SESSION_MIGRATE_FROM) still finds them.
            let Some(old) = to.migrate_from.take() else {
                eprintln!(
                    "session-admin: migrate moves sessions out of the old store: give it, as \
                     --to, the settings the app runs with, whose SESSION_MIGRATE_FROM names \
                     the old store (README: Moving to another store)"
                );
                return Ok(Exit::BadConfig);
            };
            if let Some(from) = from
                && read_config(from)? != *old
            {
                eprintln!(
                    "session-admin: --from {} is not the store the target's \
                     SESSION_MIGRATE_FROM names",
                    from.display()
                );
                return Ok(Exit::BadConfig);
            }
            let (source, target) = (Admin::open(&old).await?, Admin::open(&to).await?);
            let bar = spinner("listing sessions");
            let migrated = source
                .migrate(&target, |event| match event {
                    MigrateEvent::Listed(total) => {
                        bar.set_length(total);
                        bar.set_position(0);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{msg} {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.set_message("copying");
                    }
                    MigrateEvent::Progress(done) => bar.set_position(done.done()),
                    MigrateEvent::Failed { key, error } => {
                        bar.suspend(|| eprintln!("session-admin: {key}: {error}"));
                    }
                    _ => {}
                })
                .await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", json(&migrated));
            } else {
                println!(
                    "listed {}, moved {}, already there {}, gone meanwhile {}, failed {}",
                    migrated.listed,
                    migrated.copied,
                    migrated.already_there,
                    migrated.gone,
                    migrated.failed
                );
            }
            if migrated.failed > 0 {
                return Ok(Exit::SomeFailed);
            }
        }
    }
    Ok(Exit::Done)
}

/// The cookie value `show` looks up: the first line of `file`, or of
/// standard input when there is none or it is `-`, trimmed; an error
/// message for the operator when it cannot be read or is empty.
fn read_cookie(file: Option<&Path>) -> Result<String, String> {
    let from = file.filter(|f| *f != Path::new("-"));
    let mut line = String::new();
    let read = match from {
        Some(path) => File::open(path)
            .and_then(|file| BufReader::new(file).read_line(&mut line))
            .map_err(|error| format!("cannot read --cookie-file {}: {error}", path.display())),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("session cookie value (then Enter): ");
            }
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|error| format!("cannot read the cookie from standard input: {error}"))
        }
    };
    read?;
    let cookie = line.trim();
    if cookie.is_empty() {
        return Err(match from {
            Some(path) => format!("--cookie-file {} holds no cookie value", path.display()),
            None => "no cookie value on standard input (session-admin show < cookie.txt, or \
                     --cookie-file PATH)"
                .to_owned(),
        });
    }
    Ok(cookie.to_owned())
}

/// A progress bar of unknown length on stderr (hidden when stderr is not
/// a terminal).
fn spinner(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 86_400, secs / 3600 % 24, secs / 60 % 60) {
        (0, 0, m) => format!("{m}m {}s", secs % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (days, h, _) => format!("{days}d {h}h"),
    }
}

/// The SESSION_* settings of a `.env`-style file.
fn read_config(path: &Path) -> Result<SessionConfig, AdminError> {
    Ok(SessionConfig::from_file(path)?)
}
