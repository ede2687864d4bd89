//! Settings. Each comes from, in rising precedence: its default, the TOML
//! file given with `--config`, an environment variable `SWITCHBOARD_<NAME>`
//! (the setting's name upper-cased, e.g. `SWITCHBOARD_LISTEN`), and a flag
//! (`--listen`, or `--set name=value` for any setting).

use crate::limits::{LimitSettings, Rate};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder of the embedded store.
    pub data: PathBuf,
    /// The URL people reach this server at (printed and used for the same-origin check). Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Origins allowed to open WebSockets besides the server's own (`*` allows any).
    pub allowed_origins: Vec<String>,
    /// Email of the admin created on first start.
    pub admin_email: String,
    /// Password of that admin; random and printed once when unset.
    pub admin_password: Option<String>,
    /// Capacity of agents created without one.
    pub default_capacity: u32,
    /// The site's identity-verification secret: its backend signs a signed-in
    /// user's id with it (hex HMAC-SHA256), so the user is the same visitor on every device.
    pub identity_secret: Option<String>,
    /// Refuse a user id that is not signed (needs `identity_secret`).
    pub identity_required: bool,
    /// Let visitors chat without a verified identity (turn off for signed-in-only support).
    pub anonymous_visitors: bool,
    /// Lifetime of a visitor's token (the widget keeps it to come back as the same visitor).
    pub visitor_token_ttl_secs: u64,
    /// Lifetime of an agent's bearer token from `POST /api/login`.
    pub agent_token_ttl_secs: u64,
    /// Failed logins allowed per email within `login_window_secs` (0: no limit); more are
    /// refused with 429 before the password is checked. A success does not count.
    pub login_failures_per_email: u32,
    /// Failed logins allowed per client address (IPv6: per /64) within `login_window_secs`
    /// (0: no limit). Behind a reverse proxy every client has the proxy's address.
    pub login_failures_per_ip: u32,
    /// The window those failures are counted over; the allowance refills evenly across it.
    pub login_window_secs: u64,
    /// Messages a session's outbound queue holds before the session is cut off as too slow.
    pub outbound_queue: usize,
    /// Commits waiting for the committer before senders wait.
    pub commit_queue: usize,
    /// sled's page cache, in MiB. The heap it takes is about twice this
    /// (sled counts serialized sizes); the rest of the store stays on disk.
    pub store_cache_mib: u64,
    /// Group-commit window, in microseconds: while commits queue up behind
    /// each other, a flush starts at most this often, so that one flush
    /// covers many commits (each flush costs an fsync and wakes sled's I/O
    /// threads). A lone commit is flushed at once. 0 never waits.
    pub commit_window_us: u64,
    /// Time a new connection has to send its hello.
    pub hello_timeout_ms: u64,
    /// Interval between pings to an idle client.
    pub ping_interval_secs: u64,
    /// A connection silent this long (no frame, no pong) is closed.
    pub idle_timeout_secs: u64,
    /// Time a new connection has to send its HTTP request headers (the
    /// WebSocket handshake included); idle keep-alive connections get the same.
    pub header_timeout_ms: u64,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Longest chat message text, in characters.
    pub max_text_chars: usize,
    /// Most connections in all; 0: the open-files limit, less a reserve for the store.
    pub max_connections: usize,
    /// Most connections from one address (0: no limit). Behind a reverse proxy every
    /// client has the proxy's address: raise it or set 0 there.
    pub max_connections_per_ip: usize,
    /// Frames one connection may send per second, sustained (0: no limit).
    pub messages_per_sec: f64,
    /// Frames one connection may send at once before the rate applies.
    pub messages_burst: f64,
    /// Frames all visitor connections of one address may send per second together (0: no limit).
    pub ip_messages_per_sec: f64,
    pub ip_messages_burst: f64,
    /// New conversations (new anonymous visitors) one address may start per minute (0: no limit).
    pub ip_new_conversations_per_min: f64,
    pub ip_new_conversations_burst: f64,
    /// Per-connection read buffer (tungstenite's default is 128 KiB, allocated up front).
    pub read_buffer_bytes: usize,
    /// Bytes of outgoing frames gathered before they go to the socket; a
    /// session also sends them whenever it has written what was queued. With
    /// 0 every frame is its own `send` system call (an ack and the echo that
    /// follows it would be two), which costs a fifth of the server's CPU
    /// under load (docs/performance.md).
    pub write_buffer_bytes: usize,
    /// Bytes a connection may have waiting to be written before it errors.
    pub max_write_buffer_bytes: usize,
    /// Run the NLP pipeline on every visitor message.
    pub nlp: bool,
    /// Let the bot answer new conversations before a person (needs `nlp`).
    pub bot: bool,
    /// Bot answers in a row before the conversation goes to a person.
    pub max_bot_answers: u32,
    /// Threads analysing messages at once (0: one per core).
    pub nlp_workers: usize,
    /// A model file from `switchboard nlp train` (default: the shipped intents, trained at start).
    pub nlp_model: Option<PathBuf>,
    /// Kernel send buffer per connection (SO_SNDBUF); unset leaves the kernel's autotuning.
    /// Small values make slow readers show up sooner, at some cost to throughput.
    pub socket_send_buffer_bytes: Option<usize>,
    /// `tracing` filter, e.g. `info` or `switchboard_server=debug`.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./switchboard-data"),
            public_url: None,
            allowed_origins: Vec::new(),
            admin_email: "admin@localhost".into(),
            admin_password: None,
            default_capacity: 5,
            identity_secret: None,
            identity_required: false,
            anonymous_visitors: true,
            visitor_token_ttl_secs: 30 * 24 * 3600,
            agent_token_ttl_secs: 7 * 24 * 3600,
            login_failures_per_email: 10,
            login_failures_per_ip: 30,
            login_window_secs: 300,
            outbound_queue: 256,
            commit_queue: 8192,
            commit_window_us: 1000,
            store_cache_mib: 64,
            hello_timeout_ms: 10_000,
            ping_interval_secs: 20,
            idle_timeout_secs: 60,
            header_timeout_ms: 10_000,
            max_message_bytes: switchboard_protocol::limits::MAX_FRAME_BYTES,
            max_text_chars: switchboard_protocol::limits::MAX_TEXT_CHARS,
            max_connections: 0,
            max_connections_per_ip: 256,
            messages_per_sec: 20.0,
            messages_burst: 60.0,
            ip_messages_per_sec: 100.0,
            ip_messages_burst: 300.0,
            ip_new_conversations_per_min: 30.0,
            ip_new_conversations_burst: 30.0,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            max_write_buffer_bytes: 1024 * 1024,
            nlp: true,
            bot: true,
            max_bot_answers: 3,
            nlp_workers: 0,
            nlp_model: None,
            socket_send_buffer_bytes: None,
            log: "info".into(),
        }
    }
}

/// Open files kept back from connections: the store's files, logs, the listener.
const OPEN_FILES_RESERVE: u64 = 256;

fn rate_per_sec(per_sec: f64, burst: f64) -> Rate {
    if per_sec > 0.0 {
        Rate::per_sec(per_sec, burst)
    } else {
        Rate::UNLIMITED
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("--set {0}: expected name=value")]
    BadSet(String),
}

/// Overrides from the command line (flags win over everything).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub public_url: Option<String>,
    pub allowed_origins: Vec<String>,
    /// `name=value` pairs; the value is read as TOML, or as a string if that fails.
    pub set: Vec<String>,
}

fn toml_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// A value from the environment or `--set`, read as the setting's type
/// (`defaults` holds one of each). Text settings keep the text as given, so a
/// password `12345678` or a secret that reads as a TOML number or `true`
/// stays text (a quoted TOML string still loses its quotes); a list setting
/// takes one item, or several separated by commas, unless written as a TOML
/// array (`SWITCHBOARD_ALLOWED_ORIGINS=https://shop.example.com`); any other
/// setting is read as TOML.
fn setting_value(defaults: &toml::Table, key: &str, raw: &str) -> toml::Value {
    let text = Config::optional_text_keys().contains(&key)
        || matches!(defaults.get(key), Some(toml::Value::String(_)));
    let list = matches!(defaults.get(key), Some(toml::Value::Array(_)));
    match toml_value(raw) {
        v @ toml::Value::String(_) if text => v,
        _ if text => toml::Value::String(raw.to_string()),
        toml::Value::String(items) if list => toml::Value::Array(
            items
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        ),
        v => v,
    }
}

impl Config {
    /// Builds the settings from defaults, the file, `env` (pairs of name and value) and flags.
    pub fn load(
        o: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut table = defaults.clone();
        if let Some(path) = &o.file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let file: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError::Parse(format!("{}: {e}", path.display()))
            })?;
            table.extend(file);
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SWITCHBOARD_") else {
                continue;
            };
            let key = key.to_lowercase();
            if table.contains_key(&key) || Config::optional_keys().contains(&key.as_str()) {
                let value = setting_value(&defaults, &key, &value);
                table.insert(key, value);
            }
        }
        for pair in &o.set {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::BadSet(pair.clone()))?;
            let key = k.trim();
            table.insert(key.to_string(), setting_value(&defaults, key, v.trim()));
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.listen = o.listen.unwrap_or(config.listen);
        config.data = o.data.clone().unwrap_or(config.data);
        config.public_url = o.public_url.clone().or(config.public_url);
        config
            .allowed_origins
            .extend(o.allowed_origins.iter().cloned());
        Ok(config)
    }

    /// Settings that are absent by default (so not in the default table).
    fn optional_keys() -> &'static [&'static str] {
        &[
            "public_url",
            "admin_password",
            "identity_secret",
            "socket_send_buffer_bytes",
            "nlp_model",
        ]
    }

    /// The optional settings that are text.
    fn optional_text_keys() -> &'static [&'static str] {
        &[
            "public_url",
            "admin_password",
            "identity_secret",
            "nlp_model",
        ]
    }

    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    /// The limits in force; `open_files` is the process's open-files limit.
    pub fn limit_settings(&self, open_files: Option<u64>) -> LimitSettings {
        let max_connections = match self.max_connections {
            0 => open_files.map_or(0, |n| n.saturating_sub(OPEN_FILES_RESERVE) as usize),
            n => n,
        };
        LimitSettings {
            max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            connection_messages: rate_per_sec(self.messages_per_sec, self.messages_burst),
            ip_messages: rate_per_sec(self.ip_messages_per_sec, self.ip_messages_burst),
            ip_new_conversations: if self.ip_new_conversations_per_min > 0.0 {
                Rate::per_min(
                    self.ip_new_conversations_per_min,
                    self.ip_new_conversations_burst,
                )
            } else {
                Rate::UNLIMITED
            },
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_file_env_flags_in_rising_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndefault_capacity = 7\nlog = \"debug\"\n",
        )
        .unwrap();
        let o = Overrides {
            file: Some(file),
            ..Overrides::default()
        };
        let c = Config::load(
            &o,
            env(&[
                ("SWITCHBOARD_DEFAULT_CAPACITY", "9"),
                ("SWITCHBOARD_ADMIN_PASSWORD", "pw-from-env"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.default_capacity, 9);
        assert_eq!(c.log, "debug");
        assert_eq!(c.admin_password.as_deref(), Some("pw-from-env"));
        assert_eq!(c.outbound_queue, Config::default().outbound_queue);
        let o = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            set: vec![
                "default_capacity=3".into(),
                "allowed_origins=[\"https://a.example\"]".into(),
            ],
            ..o
        };
        let c = Config::load(&o, env(&[("SWITCHBOARD_DEFAULT_CAPACITY", "9")])).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.default_capacity, 3);
        assert_eq!(c.allowed_origins, ["https://a.example"]);
    }

    /// Values from the environment and `--set` were read as TOML whatever
    /// the setting: `SWITCHBOARD_ADMIN_PASSWORD=12345678` stopped the server
    /// ("invalid type: integer, expected a string"), and one origin in
    /// `SWITCHBOARD_ALLOWED_ORIGINS` was "expected a sequence".
    #[test]
    fn env_and_set_values_are_read_as_the_setting_type() {
        let o = Overrides {
            set: vec![
                "identity_secret=123456789".into(),
                "log=\"debug\"".into(),
                "default_capacity=3".into(),
            ],
            ..Overrides::default()
        };
        let c = Config::load(
            &o,
            env(&[
                ("SWITCHBOARD_ADMIN_PASSWORD", "12345678"),
                ("SWITCHBOARD_ADMIN_EMAIL", "true"),
                (
                    "SWITCHBOARD_ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("SWITCHBOARD_NLP", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.admin_password.as_deref(), Some("12345678"));
        assert_eq!(c.admin_email, "true");
        assert_eq!(c.identity_secret.as_deref(), Some("123456789"));
        assert_eq!(c.log, "debug");
        assert_eq!(c.default_capacity, 3);
        assert!(!c.nlp);
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let one = Config::load(
            &Overrides::default(),
            env(&[("SWITCHBOARD_ALLOWED_ORIGINS", "https://shop.example.com")]),
        )
        .unwrap();
        assert_eq!(one.allowed_origins, ["https://shop.example.com"]);
    }

    #[test]
    fn typos_and_bad_values_are_clear_errors() {
        let bad = Overrides {
            set: vec!["listn=1".into()],
            ..Overrides::default()
        };
        assert!(Config::load(&bad, [])
            .unwrap_err()
            .to_string()
            .contains("listn"));
        let bad = Overrides {
            set: vec!["default_capacity=lots".into()],
            ..Overrides::default()
        };
        assert!(Config::load(&bad, []).is_err());
        let bad = Overrides {
            set: vec!["nothing".into()],
            ..Overrides::default()
        };
        assert!(matches!(
            Config::load(&bad, []),
            Err(ConfigError::BadSet(_))
        ));
    }
}
