//! The `switchboard` server: a WebSocket hub between website visitors and
//! support agents, with an embedded store and an HTTP API.
//!
//! Module map (see ARCHITECTURE.md for the message flow):
//! - [`config`]: settings from defaults, a TOML file, `SWITCHBOARD_*` variables and flags.
//! - [`store`]: sled trees and records; values via the protocol crate's bincode codec.
//! - [`auth`]: passwords, agent bearer tokens, signed visitor tokens.
//! - [`hub`]: conversations, routing, group commit, delivery (broker).
//! - [`session`]: one WebSocket connection: hello, then a `select!` loop.
//! - [`http`]: the axum router: WebSocket upgrade, REST API, assets, health, metrics.
//! - [`metrics`]: the Prometheus registry.
//! - [`server`]: start-up and the shutdown order.

pub mod auth;
pub mod config;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod nlp;
pub mod server;
pub mod session;
pub mod store;
