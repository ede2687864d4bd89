//! Start-up and shutdown.
//!
//! Start: open the store → make sure an admin exists → load the hub (open
//! conversations, agents, queue) and start its committer → bind → serve.
//!
//! Shutdown, in this order: stop accepting connections (axum's graceful
//! shutdown) → tell every session to close with 1001 "going away" (the
//! shared cancellation token) → wait for the sessions to end (their
//! tracker) → stop the committer after its last batch, which flushes the store.

use crate::config::Config;
use crate::http::conn::ConnSettings;
use crate::http::{self, AppState};
use crate::hub::{Hub, HubConfig, LocalBroker};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::nlp::Nlp;
use crate::store::{AgentRecord, Store};
use crate::{auth, hub};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_nlp::{KnowledgeBase, Pipeline};
use switchboard_protocol::model::Role;
use switchboard_protocol::AgentId;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A server that is accepting connections.
pub struct Running {
    pub addr: SocketAddr,
    /// The first admin's password when this start created it and none was configured.
    pub generated_admin_password: Option<String>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Begins the shutdown sequence.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has shut down and flushed.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Creates the first admin when there is no agent at all; returns a generated password.
pub async fn ensure_admin(store: &Store, config: &Config) -> anyhow::Result<Option<String>> {
    if !store.agents()?.is_empty() {
        return Ok(None);
    }
    let (password, generated) = match &config.admin_password {
        // The rule every other password follows (a short one is refused by REST and the CLI).
        Some(p) if p.chars().count() < hub::accounts::MIN_PASSWORD => anyhow::bail!(
            "admin_password (SWITCHBOARD_ADMIN_PASSWORD) must be at least {} characters",
            hub::accounts::MIN_PASSWORD
        ),
        Some(p) => (p.clone(), false),
        None => (auth::random_password(), true),
    };
    let mut admin = AgentRecord::new(
        AgentId(store.next_id()?),
        &config.admin_email,
        "Admin",
        &{
            let p = password.clone();
            auth::on_password_thread(move || auth::hash_password(&p))
                .await
                .context("hashing the admin's password")?
        },
        Role::Admin,
        config.default_capacity,
    );
    admin.created_at = hub::now_ms();
    store.put_agent(&admin)?;
    store.flush()?;
    Ok(generated.then_some(password))
}

fn allowed_origins(config: &Config) -> Vec<String> {
    let mut origins: Vec<String> = config
        .allowed_origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
        .collect();
    if let Some(url) = &config.public_url {
        let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        origins.push(origin.to_ascii_lowercase());
    }
    origins
}

/// The NLP pipeline: the configured model file or the shipped one, and the
/// knowledge base admins saved (or the shipped one).
async fn load_nlp(config: &Config, store: &Store) -> anyhow::Result<Nlp> {
    let kb = match store.knowledge_base()? {
        Some(json) => KnowledgeBase::from_json(&json).context("the stored knowledge base")?,
        None => KnowledgeBase::default_shop()?,
    };
    let model = config.nlp_model.clone();
    let kb2 = kb.clone();
    let pipeline = tokio::task::spawn_blocking(move || match model {
        Some(path) => Pipeline::from_model_file(&path, kb2).map(Arc::new),
        None => crate::nlp::default_pipeline(),
    })
    .await??;
    let workers = if config.nlp_workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.nlp_workers
    };
    Ok(Nlp::new(pipeline, kb, workers, config.max_bot_answers))
}

/// The hub's settings, from the server's.
fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        visitor_token_ttl: Duration::from_secs(config.visitor_token_ttl_secs),
        agent_token_ttl: Duration::from_secs(config.agent_token_ttl_secs),
        commit_queue: config.commit_queue.max(1),
        commit_window: Duration::from_micros(config.commit_window_us),
        bot: config.bot,
        max_text_chars: config.max_text_chars,
        identity: auth::IdentitySecret::new(config.identity_secret.as_deref()),
        identity_required: config.identity_required,
        anonymous_visitors: config.anonymous_visitors,
    }
}

/// A hub over the data folder with no server in front of it, for the
/// `switchboard agent` commands (the server must be stopped: the store has
/// one owner). Account changes then take the same hub methods as the REST
/// API's, so routing, the queue and tokens end up as they would over REST;
/// there are just no sessions to close. Call [`Hub::shutdown`] when done:
/// it flushes the store. Needs a Tokio runtime.
pub fn offline_hub(config: &Config) -> anyhow::Result<Hub> {
    let store = Store::open(&config.data).with_context(|| {
        format!(
            "opening {} (is a server running on it?)",
            config.data.display()
        )
    })?;
    let hub = Hub::start(
        store,
        Arc::new(LocalBroker::default()),
        hub_config(config),
        Arc::new(Metrics::default()),
        None,
    )?;
    Ok(hub)
}

/// Opens the store, binds, and serves until [`Running::shutdown`].
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let cache = config.store_cache_mib.saturating_mul(1024 * 1024);
    let store = Store::open_with_cache(&config.data, cache)
        .with_context(|| format!("opening the store in {}", config.data.display()))?;
    let generated_admin_password = ensure_admin(&store, &config).await?;
    let hub_config = hub_config(&config);
    let nlp = if config.nlp {
        Some(Arc::new(load_nlp(&config, &store).await?))
    } else {
        None
    };
    let hub = Hub::start(
        store,
        Arc::new(LocalBroker::default()),
        hub_config,
        Arc::new(Metrics::default()),
        nlp,
    )?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let open_files = crate::limits::raise_open_files_limit();
    let limits = Limits::new(config.limit_settings(open_files));
    let conn_settings = ConnSettings {
        header_timeout: config.header_timeout(),
        send_buffer: config.socket_send_buffer_bytes,
    };
    let shutdown = CancellationToken::new();
    let sessions = TaskTracker::new();
    let heartbeat = heartbeat(config.ping_interval(), hub.clone(), shutdown.clone());
    let state = AppState {
        heartbeat,
        hub: hub.clone(),
        origins: Arc::new(allowed_origins(&config)),
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        sessions: sessions.clone(),
    };
    let app = http::router(state);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        http::conn::serve(listener, app, limits, conn_settings, stop).await;
        sessions.close();
        sessions.wait().await;
        hub.shutdown().await;
        tracing::info!("stopped; store flushed");
        Ok(())
    });
    Ok(Running {
        addr,
        generated_admin_password,
        shutdown,
        task,
    })
}

/// One timer for every session: ticks every `period` until `stop`. Each
/// session pings its client on a tick and closes it if it has been silent
/// for the idle timeout, so idle connections carry no timer of their own.
/// Each tick also closes the agent sessions whose token has expired and
/// drops closed conversations from memory ([`Hub::forget_closed`]).
fn heartbeat(
    period: Duration,
    hub: Hub,
    stop: CancellationToken,
) -> tokio::sync::watch::Receiver<()> {
    let (tx, rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    tx.send_replace(());
                    hub.close_expired_sessions();
                    hub.forget_closed();
                }
            }
        }
    });
    rx
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
