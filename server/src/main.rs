//! The `switchboard` command: `serve`, `agent add|list|remove|passwd`.
//! Settings: see `config` (defaults < `--config` file < `SWITCHBOARD_*` < flags).

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard_protocol::model::Role;
use switchboard_protocol::AgentId;
use switchboard_server::config::{Config, Overrides};
use switchboard_server::store::{AgentRecord, Store};
use switchboard_server::{auth, hub, server};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time customer conversations: WebSocket hub, embedded store, agent console."
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
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

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Train or evaluate intent models.
    Nlp {
        #[command(subcommand)]
        command: switchboard_nlp::cli::NlpCommand,
    },
    /// Manage agent accounts (stop the server first: the store has one owner).
    Agent {
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
    /// Delete an account.
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
    let s = cli.settings;
    let overrides = Overrides {
        file: s.config,
        listen: s.listen,
        data: s.data,
        public_url: s.public_url,
        allowed_origins: s.allowed_origins,
        set: s.set,
    };
    let config = Config::load(&overrides, std::env::vars())?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve => serve(config),
        Command::Agent { command } => agent(&config, command),
        Command::Nlp { command } => switchboard_nlp::cli::run(command),
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
    let store = Store::open(&config.data).with_context(|| {
        format!(
            "opening {} (is a server running on it?)",
            config.data.display()
        )
    })?;
    match command {
        AgentCommand::Add {
            email,
            name,
            role,
            capacity,
            teams,
            password,
        } => {
            let teams = hub::teams::check_teams(teams)?;
            let (password, generated) = password_or_random(password);
            let mut a = AgentRecord::new(
                AgentId(store.next_id()?),
                &email,
                &name,
                &auth::hash_password(&password),
                role,
                capacity.unwrap_or(config.default_capacity),
            );
            a.created_at = hub::now_ms();
            a.teams = teams;
            if !store.put_agent(&a)? {
                bail!("an agent with email {email} exists");
            }
            println!("added {} ({email})", a.id);
            if generated {
                println!("password: {password}");
            }
        }
        AgentCommand::List => {
            for a in store.agents()? {
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
                println!(
                    "{}\t{}\t{}\t{role}\tcapacity {}\t{state}\tteams {teams}",
                    a.id, a.email, a.name, a.capacity
                );
            }
        }
        AgentCommand::Remove { email } => {
            let a = store
                .agent_by_email(&email)?
                .with_context(|| format!("no agent {email}"))?;
            store.delete_agent(&a)?;
            println!("removed {email}");
        }
        AgentCommand::Passwd { email, password } => {
            let mut a = store
                .agent_by_email(&email)?
                .with_context(|| format!("no agent {email}"))?;
            let (password, generated) = password_or_random(password);
            a.password_hash = auth::hash_password(&password);
            store.put_agent(&a)?;
            store.revoke_agent_tokens(a.id)?;
            println!("password changed for {email}");
            if generated {
                println!("password: {password}");
            }
        }
    }
    store.flush()?;
    Ok(())
}

fn password_or_random(p: Option<String>) -> (String, bool) {
    match p {
        Some(p) => (p, false),
        None => (auth::random_password(), true),
    }
}
