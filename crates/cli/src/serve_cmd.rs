//! `ses-dmarc serve`, `user add|list|remove`, `token create|list|revoke`: the dashboard
//! and API (`ses_dmarc_server`), and the people who may use them.

use crate::Exit;
use crate::dns_args::DnsArgs;
use crate::reports_cmd::DatabaseArg;
use crate::style::{OutFormat, escape};
use crate::watch_cmd::{load_config, open_db};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ses_dmarc_monitor::schedule::rfc3339;
use ses_dmarc_store::OpenMode;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 stopped by SIGTERM or Ctrl-C; 2 bad configuration or usage; 3 the address cannot be listened on.\n\nFirst time? `ses-dmarc serve --demo` serves sample domains from a throw-away database."
)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML: database, listen, [dns], [schedule], [[domain]], intake, alerts, [serve]).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    /// Where to listen (default: the configuration's `listen`, else 127.0.0.1:8480; port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) listen: Option<String>,
    /// Serve four sample domains with 30 days of generated reports from a throw-away
    /// database (removed on exit); prints the demo user's password.
    #[arg(long, conflicts_with_all = ["config", "database"])]
    pub(crate) demo: bool,
    /// Only the web server: no watch or intake schedule.
    #[arg(long)]
    pub(crate) no_schedule: bool,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user (or set an existing one's password, role and tags); the password is read
    /// from standard input.
    Add(UserAddArgs),
    /// The users.
    List(UserListArgs),
    /// Remove a user, with their sessions and tokens.
    Remove(UserRemoveArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "The password is the first line of standard input: `printf '%s\\n' \"$PASSWORD\" | ses-dmarc user add ops --role admin`.\n\nExit codes: 0 added; 2 usage or input error."
)]
pub(crate) struct UserAddArgs {
    /// The login name.
    pub(crate) name: String,
    /// admin (everything) or viewer (reads; limited to --tag when given).
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: String,
    /// Limit a viewer to the domains with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// The configuration file whose `database` to use.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

#[derive(Debug, Args)]
pub(crate) struct UserListArgs {
    /// The configuration file whose `database` to use.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
    #[arg(long, short = 'f', value_enum, default_value_t = OutFormat::Human)]
    pub(crate) format: OutFormat,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 removed; 1 no such user; 2 usage error.")]
pub(crate) struct UserRemoveArgs {
    /// The login name.
    pub(crate) name: String,
    /// The configuration file whose `database` to use.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make an API bearer token for a user; it is printed once (only its hash is kept).
    Create(TokenCreateArgs),
    /// The tokens (without their secrets).
    List(UserListArgs),
    /// Revoke a user's token by its label.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Use it as `Authorization: Bearer <token>`: `curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8480/api/v1/domains`.\n\nExit codes: 0 made; 2 usage or input error."
)]
pub(crate) struct TokenCreateArgs {
    /// Whose rights the token carries.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: String,
    /// What the token is for (unique per user).
    #[arg(long, value_name = "TEXT", default_value = "api")]
    pub(crate) label: String,
    /// The configuration file whose `database` to use.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 revoked; 1 no such token; 2 usage error.")]
pub(crate) struct TokenRevokeArgs {
    /// The token's label.
    pub(crate) label: String,
    /// Whose token.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: String,
    /// The configuration file whose `database` to use.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DatabaseArg,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<Exit> {
    let now = ses_dmarc_ops::now();
    let demo_dir = std::env::temp_dir().join(format!("ses-dmarc-demo-{}", std::process::id()));
    let (db, mut config) = if args.demo {
        let _ = std::fs::remove_dir_all(&demo_dir);
        eprintln!("ses-dmarc serve: preparing the demo in {} ...", demo_dir.display());
        let demo = ses_dmarc_server::demo::prepare(&demo_dir, now).await?;
        eprintln!(
            "ses-dmarc serve: demo ready: sign in as `{}` with the password `{}` (the demo is removed when serve stops)",
            demo.user, demo.password
        );
        (demo.db, demo.config)
    } else {
        let mut config = load_config(args.config.as_ref())?;
        if !args.dns.nameservers.is_empty() || !args.dns.zones.is_empty() {
            config.dns = args.dns.options();
        }
        (open_db(&args.db, &config, OpenMode::Create).await?, config)
    };
    let listen = args.listen.clone().or(config.listen.clone()).unwrap_or_else(|| "127.0.0.1:8480".into());
    config.listen = Some(listen.clone());
    let options = ses_dmarc_server::ServeOptions { listen, schedules: !args.no_schedule };
    let result = ses_dmarc_server::serve(db, config, options, |address| {
        eprintln!("ses-dmarc serve: listening on http://{address}");
    })
    .await;
    if args.demo {
        let _ = std::fs::remove_dir_all(&demo_dir);
    }
    match result {
        Ok(()) => {
            eprintln!("ses-dmarc serve: stopped");
            Ok(Exit::Success)
        }
        Err(ses_dmarc_server::ServeError::Listen { address, reason }) => {
            crate::style::error(&mut std::io::stderr(), &format!("cannot listen on {address}: {reason}"));
            Ok(Exit::Unknown)
        }
        Err(e) => Err(e.into()),
    }
}

/// The first line of standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (shown as typed; pipe it in to keep it off the screen): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    // One line of at most 4 KB: a password, not a file.
    std::io::Read::take(stdin.lock(), 4096)
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input: `printf '%s\\n' \"$PASSWORD\" | ses-dmarc user add NAME --role viewer`");
    }
    Ok(password)
}

pub(crate) async fn user(cmd: UserCommand) -> anyhow::Result<Exit> {
    match cmd {
        UserCommand::Add(a) => {
            let config = load_config(a.config.as_ref())?;
            let password = read_password()?;
            let (user, hash) = ses_dmarc_server::new_user(&a.name, &a.role, &a.tags, &password, ses_dmarc_ops::now())?;
            let db = open_db(&a.db, &config, OpenMode::Create).await?;
            let (name, role) = (user.name.clone(), user.role.clone());
            db.run(move |s| s.put_user(&user, &hash)).await?;
            println!("{name} may sign in as {role} ({}).", db.name());
            Ok(Exit::Success)
        }
        UserCommand::List(a) => {
            let config = load_config(a.config.as_ref())?;
            let db = open_db(&a.db, &config, OpenMode::Existing).await?;
            let users = db.run(|s| s.users()).await?;
            let mut out = std::io::stdout().lock();
            match a.format {
                OutFormat::Json => {
                    let v: Vec<serde_json::Value> = users
                        .iter()
                        .map(|u| serde_json::json!({"name": u.name, "role": u.role, "tags": u.tags, "created_at": rfc3339(u.created_at)}))
                        .collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                }
                OutFormat::Human => {
                    if users.is_empty() {
                        writeln!(out, "No user yet: `ses-dmarc user add NAME --role admin`.")?;
                    }
                    for u in &users {
                        let tags = if u.tags.is_empty() { String::new() } else { format!("  [{}]", u.tags.join(", ")) };
                        writeln!(
                            out,
                            "{:<24} {:<7} since {}{}",
                            escape(&u.name),
                            u.role,
                            rfc3339(u.created_at),
                            escape(&tags)
                        )?;
                    }
                }
            }
            Ok(Exit::Success)
        }
        UserCommand::Remove(a) => {
            let config = load_config(a.config.as_ref())?;
            let db = open_db(&a.db, &config, OpenMode::Existing).await?;
            let name = a.name.clone();
            if db.run(move |s| s.remove_user(&name)).await? {
                println!("{}: removed, with their sessions and tokens", escape(&a.name));
                Ok(Exit::Success)
            } else {
                crate::style::warning(&mut std::io::stderr(), &format!("no user `{}`", escape(&a.name)));
                Ok(Exit::Problems)
            }
        }
    }
}

pub(crate) async fn token(cmd: TokenCommand) -> anyhow::Result<Exit> {
    match cmd {
        TokenCommand::Create(a) => {
            let config = load_config(a.config.as_ref())?;
            let db = open_db(&a.db, &config, OpenMode::Existing).await?;
            let secret = ses_dmarc_server::create_token(&db, &a.user, &a.label, ses_dmarc_ops::now()).await?;
            println!("{secret}");
            if std::io::stdout().is_terminal() {
                eprintln!("(shown once: only its hash is kept)");
            }
            Ok(Exit::Success)
        }
        TokenCommand::List(a) => {
            let config = load_config(a.config.as_ref())?;
            let db = open_db(&a.db, &config, OpenMode::Existing).await?;
            let tokens = db.run(|s| s.tokens()).await?;
            let mut out = std::io::stdout().lock();
            match a.format {
                OutFormat::Json => {
                    let v: Vec<serde_json::Value> = tokens
                        .iter()
                        .map(|t| serde_json::json!({"label": t.label, "user": t.user, "created_at": rfc3339(t.created_at), "last_used": t.last_used.map(rfc3339)}))
                        .collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                }
                OutFormat::Human => {
                    if tokens.is_empty() {
                        writeln!(out, "No token yet: `ses-dmarc token create --user NAME`.")?;
                    }
                    for t in &tokens {
                        writeln!(
                            out,
                            "{:<20} {:<20} made {}  last used {}",
                            escape(&t.user),
                            escape(&t.label),
                            rfc3339(t.created_at),
                            t.last_used.map(rfc3339).unwrap_or_else(|| "never".into())
                        )?;
                    }
                }
            }
            Ok(Exit::Success)
        }
        TokenCommand::Revoke(a) => {
            let config = load_config(a.config.as_ref())?;
            let db = open_db(&a.db, &config, OpenMode::Existing).await?;
            let (user, label) = (a.user.clone(), a.label.clone());
            if db.run(move |s| s.revoke_token(&user, &label)).await? {
                println!("{}'s token `{}` is revoked", escape(&a.user), escape(&a.label));
                Ok(Exit::Success)
            } else {
                crate::style::warning(
                    &mut std::io::stderr(),
                    &format!("{} has no token `{}`", escape(&a.user), escape(&a.label)),
                );
                Ok(Exit::Problems)
            }
        }
    }
}
