//! The `switchboard` command: `serve`, `agent add|list|set|remove|passwd`.
//! Settings: see `config` (defaults < `--config` file < `SWITCHBOARD_*` < flags).
//!
//! The `agent` commands run the hub over the data folder without serving
//! (`server::offline_hub`) and call the same hub methods as the REST API, so
//! an account changed here ends up as it would over REST (a disabled or
//! removed agent's conversations go back to the queue, tokens are revoked).

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard_protocol::model::Role;
use switchboard_server::config::{Config, Overrides};
use switchboard_server::hub::accounts::{AgentChanges, NewAgent};
use switchboard_server::hub::Hub;
use switchboard_server::store::AgentRecord;
use switchboard_server::{auth, server};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time customer conversations: WebSocket hub, embedded store, agent console."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Settings {
    /// TOML settings file.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data folder [default: ./switchboard-data].
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// The URL people reach this server at.
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// An origin allowed to open WebSockets (repeatable; `*` for any).
    #[arg(long = "allowed-origin", global = true)]
    allowed_origins: Vec<String>,
    /// Any setting, as name=value (repeatable).
    #[arg(long, global = true, value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// The server settings belong to the commands that open the server's data
/// (`global` within them, so `agent add … --data DIR` reads): `nlp` has
/// flags of its own with the same names (`nlp train --data FILE`).
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Train or evaluate intent models.
    Nlp {
        #[command(subcommand)]
        command: switchboard_nlp::cli::NlpCommand,
    },
    /// Manage agent accounts (stop the server first: the store has one owner).
    Agent {
        #[command(flatten)]
        settings: Settings,
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an account. The password comes from --password, SWITCHBOARD_AGENT_PASSWORD, or is generated and printed.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role, default_value = "agent")]
        role: Role,
        #[arg(long)]
        capacity: Option<u32>,
        /// A team the agent takes conversations for (repeatable), e.g. `--team orders`.
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
        #[arg(long, env = "SWITCHBOARD_AGENT_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List accounts.
    List,
    /// Change an account: only what is given changes (as `PATCH /api/agents/{id}`).
    Set {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        #[arg(long)]
        capacity: Option<u32>,
        /// The agent's teams (repeatable): replaces the whole set, e.g. `--team orders --team billing`.
        #[arg(long = "team", value_name = "TEAM", conflicts_with = "no_teams")]
        teams: Vec<String>,
        /// Take the agent out of every team.
        #[arg(long)]
        no_teams: bool,
        /// Disable the account: it cannot sign in, and its open conversations go back to the queue.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable the account again (it signs in anew).
        #[arg(long)]
        enable: bool,
    },
    /// Delete an account; its open conversations go back to the queue.
    Remove {
        #[arg(long)]
        email: String,
    },
    /// Set a new password (revokes the account's tokens).
    Passwd {
        #[arg(long)]
        email: String,
        #[arg(long, env = "SWITCHBOARD_AGENT_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "admin" => Ok(Role::Admin),
        "agent" => Ok(Role::Agent),
        _ => Err("role is admin or agent".into()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = match &cli.command {
        Command::Serve { settings } | Command::Agent { settings, .. } => Some(settings),
        Command::Nlp { .. } => None,
    };
    let overrides = settings.map(Settings::overrides).unwrap_or_default();
    let config = Config::load(&overrides, std::env::vars())?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { .. } => serve(config),
        Command::Agent { command, .. } => agent(&config, command),
        Command::Nlp { command } => switchboard_nlp::cli::run(command),
    }
}

impl Settings {
    fn overrides(&self) -> Overrides {
        Overrides {
            file: self.config.clone(),
            listen: self.listen,
            data: self.data.clone(),
            public_url: self.public_url.clone(),
            allowed_origins: self.allowed_origins.clone(),
            set: self.set.clone(),
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let admin_email = config.admin_email.clone();
        let running = server::start(config.clone()).await?;
        let base = config.public_url.clone().unwrap_or_else(|| format!("http://{}", running.addr));
        println!("switchboard listening on http://{}", running.addr);
        println!("  demo page:     {base}/");
        println!("  agent console: {base}/console");
        println!("  data folder:   {}", config.data.display());
        if let Some(pw) = &running.generated_admin_password {
            println!("  first admin:   {admin_email} / {pw}   (shown once; change it with `switchboard agent passwd`)");
        }
        server::shutdown_signal().await;
        tracing::info!("shutting down");
        running.shutdown();
        running.stopped().await
    })
}

fn agent(config: &Config, command: AgentCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let hub = server::offline_hub(config)?;
        let done = agent_command(&hub, config, command).await;
        // Flushes whatever the command wrote.
        hub.shutdown().await;
        done
    })
}

async fn agent_command(hub: &Hub, config: &Config, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Add {
            email,
            name,
            role,
            capacity,
            teams,
            password,
        } => {
            let (password, generated) = password_or_random(password);
            let new = NewAgent {
                email,
                name,
                password: password.clone(),
                role,
                capacity: capacity.unwrap_or(config.default_capacity),
                teams,
            };
            let a = hub.create_agent(new).await?;
            println!("added {} ({})", a.id, a.email);
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::List => {
            for a in hub.store().agents()? {
                println!("{}", describe(&a));
            }
        }
        AgentCommand::Set {
            email,
            name,
            role,
            capacity,
            teams,
            no_teams,
            disable,
            enable,
        } => {
            let changes = AgentChanges {
                name,
                role,
                capacity,
                password: None,
                disabled: (disable || enable).then_some(disable),
                teams: (no_teams || !teams.is_empty()).then_some(teams),
            };
            let nothing = changes.name.is_none()
                && changes.role.is_none()
                && changes.capacity.is_none()
                && changes.disabled.is_none()
                && changes.teams.is_none();
            if nothing {
                bail!("nothing to change: give --name, --role, --capacity, --team, --no-teams, --disable or --enable");
            }
            let a = existing(hub, &email)?;
            let a = hub.update_agent(a.id, changes, None).await?;
            println!("{}", describe(&a));
        }
        AgentCommand::Remove { email } => {
            let a = existing(hub, &email)?;
            hub.delete_agent(a.id).await?;
            println!("removed {email}");
        }
        AgentCommand::Passwd { email, password } => {
            let a = existing(hub, &email)?;
            let (password, generated) = password_or_random(password);
            let changes = AgentChanges {
                password: Some(password.clone()),
                ..AgentChanges::default()
            };
            // No token is kept: every device signs in again.
            hub.update_agent(a.id, changes, None).await?;
            println!("password changed for {email}");
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}

fn existing(hub: &Hub, email: &str) -> anyhow::Result<AgentRecord> {
    hub.store()
        .agent_by_email(email)?
        .with_context(|| format!("no agent {email}"))
}

/// One line of `agent list`: id, email, name, role, capacity, state, teams.
fn describe(a: &AgentRecord) -> String {
    let role = if a.role == Role::Admin {
        "admin"
    } else {
        "agent"
    };
    let state = if a.disabled { "disabled" } else { "enabled" };
    let teams = if a.teams.is_empty() {
        "-".to_string()
    } else {
        a.teams.join(",")
    };
    format!(
        "{}\t{}\t{}\t{role}\tcapacity {}\t{state}\tteams {teams}",
        a.id, a.email, a.name, a.capacity
    )
}

fn password_or_random(p: Option<String>) -> (String, bool) {
    match p {
        Some(p) => (p, false),
        None => (auth::random_password(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use switchboard_nlp::cli::NlpCommand;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `nlp` has flags named like the server's settings (`train --data
    /// FILE`); when the settings were global to every command, reading the
    /// parsed value back panicked (a `String` read as a `PathBuf`).
    #[test]
    fn nlp_flags_do_not_meet_the_server_settings() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "nlp",
            "train",
            "--data",
            "default",
            "--out",
            "m.bin",
            "--settings",
            "s.json",
        ])
        .unwrap();
        match cli.command {
            Command::Nlp {
                command: NlpCommand::Train { data, settings, .. },
            } => {
                assert_eq!(data, ["default"]);
                assert_eq!(settings.as_deref(), Some("s.json"));
            }
            _ => panic!("parsed as another command"),
        }
        let cli = Cli::try_parse_from([
            "switchboard",
            "nlp",
            "eval",
            "--train",
            "default",
            "--cv",
            "5",
            "--settings",
            r#"{"epochs":3}"#,
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Nlp {
                command: NlpCommand::Eval {
                    cv: Some(5),
                    settings: Some(_),
                    ..
                }
            }
        ));
    }

    #[test]
    fn server_settings_parse_before_and_after_an_agent_subcommand() {
        let cli = Cli::try_parse_from([
            "switchboard",
            "serve",
            "--config",
            "s.toml",
            "--data",
            "d",
            "--set",
            "log=debug",
        ])
        .unwrap();
        let Command::Serve { settings } = cli.command else {
            panic!("not serve");
        };
        let o = settings.overrides();
        assert_eq!(o.file, Some(PathBuf::from("s.toml")));
        assert_eq!(o.data, Some(PathBuf::from("d")));
        assert_eq!(o.set, ["log=debug"]);
        for args in [
            &["switchboard", "agent", "--data", "d", "list"][..],
            &["switchboard", "agent", "list", "--data", "d"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Agent {
                settings,
                command: AgentCommand::List,
            } = cli.command
            else {
                panic!("not agent list: {args:?}");
            };
            assert_eq!(
                settings.overrides().data,
                Some(PathBuf::from("d")),
                "{args:?}"
            );
        }
    }
}
