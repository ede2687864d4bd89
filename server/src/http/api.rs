//! REST handlers (docs/api.md). Agents authenticate with a bearer token;
//! admin-only routes check the role. Writes return once durable.

use super::conn::ConnInfo;
use super::throttle::LoginThrottle;
use super::{ApiError, AppState};
use crate::hub::accounts::{AgentChanges, NewAgent};
use crate::hub::{now_ms, Actor, HubError};
use crate::metrics::StatusLabel;
use crate::store::Customer;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::client::History;
use switchboard_protocol::limits::MAX_FIELD_BYTES;
use switchboard_protocol::model::{ConversationStatus, Role};
use switchboard_protocol::{AgentId, ConversationId, CustomerId, ErrorCode};

type ApiResult<T> = Result<T, ApiError>;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// An authenticated agent (from `Authorization: Bearer …`).
pub(super) struct Agent(pub(super) Actor, pub(super) String);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> ApiResult<Agent> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing bearer token"))?;
        let actor = app.hub.authenticate(token)?;
        Ok(Agent(actor, token.to_string()))
    }
}

/// An authenticated admin, and the token they used.
pub(super) struct Admin(pub(super) Actor, pub(super) String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> ApiResult<Admin> {
        let Agent(actor, token) = Agent::from_request_parts(parts, app).await?;
        if !actor.is_admin() {
            return Err(ApiError::new(ErrorCode::Forbidden, "admins only"));
        }
        Ok(Admin(actor, token))
    }
}

fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

pub(super) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let m = app.hub.metrics();
    let open = app.hub.open_counts();
    let open_total: usize = open.iter().map(|(_, n)| n).sum();
    for (status, n) in open {
        let label = StatusLabel {
            status: status_name(status),
        };
        m.conversations
            .get_or_create(&label)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let closed = app
        .hub
        .store()
        .conversation_count()
        .saturating_sub(open_total);
    m.conversations
        .get_or_create(&StatusLabel { status: "closed" })
        .set(i64::try_from(closed).unwrap_or(i64::MAX));
    m.queue_length
        .set(i64::try_from(app.hub.routing().queue_len()).unwrap_or(i64::MAX));
    m.conversations_in_memory
        .set(i64::try_from(app.hub.conversations_in_memory()).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}

fn status_name(s: ConversationStatus) -> &'static str {
    match s {
        ConversationStatus::Bot => "bot",
        ConversationStatus::Queued => "queued",
        ConversationStatus::Assigned => "assigned",
        ConversationStatus::Closed => "closed",
    }
}

#[derive(Deserialize)]
pub(super) struct Login {
    email: String,
    password: String,
}

/// Checks the password unless this email or this address has failed too
/// often lately (see `throttle`): then 429 with `Retry-After`, before any
/// hashing. A wrong email or password is 401; the right password of a
/// disabled account is 403 `forbidden` "account disabled".
pub(super) async fn login(
    State(app): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    conn: Option<Extension<ConnInfo>>,
    body: Result<Json<Login>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(l) = body?;
    let address = conn.map(|Extension(c)| c.peer.ip());
    let attempt = match throttle.begin(&l.email, address) {
        Ok(attempt) => attempt,
        Err(wait) => return Ok(too_many_logins(wait)),
    };
    let (token, expires_at, agent) =
        app.hub
            .login(&l.email, &l.password)
            .await
            .map_err(|e| match e {
                HubError::Unauthorized => {
                    ApiError::new(ErrorCode::Unauthorized, "wrong email or password")
                }
                other => ApiError::from(other),
            })?;
    attempt.succeeded();
    Ok(
        Json(json!({ "token": token, "expires_at": expires_at, "agent": agent.view() }))
            .into_response(),
    )
}

/// 429 `rate_limited` with `Retry-After` in whole seconds (rounded up).
fn too_many_logins(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut res = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many failed logins: retry in {secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

/// Revokes the caller's token and closes the WebSocket sessions opened with it.
pub(super) async fn logout(
    State(app): State<AppState>,
    Agent(_, token): Agent,
) -> ApiResult<StatusCode> {
    app.hub.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn me(
    State(app): State<AppState>,
    Agent(actor, _): Agent,
) -> ApiResult<impl IntoResponse> {
    let id = actor
        .agent_id()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not an agent"))?;
    let agent = app
        .hub
        .store()
        .agent(id)?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not an agent"))?;
    Ok(Json(agent.view()))
}

// ---- customers ----

#[derive(Deserialize)]
pub(super) struct CustomerQuery {
    q: Option<String>,
    country: Option<String>,
    tag: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

fn customer_matches(c: &Customer, q: &CustomerQuery) -> bool {
    let text =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|t| !t.is_empty());
    let text_ok = text.is_none_or(|t| {
        [&c.name, &c.email]
            .iter()
            .any(|f| f.as_deref().is_some_and(|v| v.to_lowercase().contains(&t)))
    });
    let country_ok = q.country.as_deref().is_none_or(|k| {
        c.country
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(k))
    });
    let tag_ok = q
        .tag
        .as_deref()
        .is_none_or(|t| c.tags.iter().any(|x| x == t));
    text_ok && country_ok && tag_ok
}

pub(super) async fn list_customers(
    State(app): State<AppState>,
    _: Agent,
    query: Result<Query<CustomerQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let limit = page_size(q.limit);
    let mut customers = Vec::with_capacity(limit + 1);
    for c in app.hub.store().customers_desc(q.cursor.map(CustomerId)) {
        let c = c?;
        if customer_matches(&c, &q) {
            customers.push(c);
            if customers.len() > limit {
                break;
            }
        }
    }
    let next = (customers.len() > limit).then(|| customers[limit - 1].id.0.to_string());
    customers.truncate(limit);
    Ok(Json(json!({ "customers": customers, "next_cursor": next })))
}

/// Applies a JSON object of profile fields; `null` clears a field.
fn apply_customer_fields(c: &mut Customer, body: &Map<String, Value>) -> ApiResult<()> {
    for (k, v) in body {
        let text = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ if k == "attributes" || k == "tags" => None,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{k} must be a string or null"
                )))
            }
        };
        crate::hub::check_field(k, text.as_deref())?;
        let slot = match k.as_str() {
            "name" => &mut c.name,
            "email" => &mut c.email,
            "phone" => &mut c.phone,
            "company" => &mut c.company,
            "country" => &mut c.country,
            "attributes" => {
                c.attributes = serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::bad_request("attributes must map strings to strings"))?;
                continue;
            }
            "tags" => {
                c.tags = serde_json::from_value(v.clone())
                    .map_err(|_| ApiError::bad_request("tags must be a list of strings"))?;
                continue;
            }
            "id" | "first_seen" | "last_seen" | "external_id" | "last_page_url" | "user_agent" => {
                continue
            }
            other => return Err(ApiError::bad_request(format!("unknown field {other}"))),
        };
        *slot = text;
    }
    let too_big = c.attributes.len() > switchboard_protocol::limits::MAX_ATTRIBUTES
        || c.tags.len() > switchboard_protocol::limits::MAX_ATTRIBUTES;
    if too_big {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            "too many attributes or tags",
        ));
    }
    // Each item is a profile field: the same 512 bytes as a visitor's `identify`.
    let items = c.attributes.iter().flat_map(|(k, v)| [k, v]).chain(&c.tags);
    if items.into_iter().any(|item| item.len() > MAX_FIELD_BYTES) {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("an attribute or tag is longer than {MAX_FIELD_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(super) async fn create_customer(
    State(app): State<AppState>,
    _: Agent,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(body) = body?;
    let mut c = Customer::new(CustomerId(app.hub.store().next_id()?), now_ms());
    apply_customer_fields(&mut c, &body)?;
    app.hub.persist_with(|store| store.put_customer(&c)).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

fn customer_or_404(app: &AppState, id: u64) -> ApiResult<Customer> {
    app.hub
        .store()
        .customer(CustomerId(id))?
        .ok_or_else(|| ApiError::not_found("no such customer"))
}

pub(super) async fn get_customer(
    State(app): State<AppState>,
    _: Agent,
    Path(id): Path<u64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(customer_or_404(&app, id)?))
}

pub(super) async fn update_customer(
    State(app): State<AppState>,
    _: Agent,
    Path(id): Path<u64>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(body) = body?;
    let mut c = customer_or_404(&app, id)?;
    apply_customer_fields(&mut c, &body)?;
    app.hub.save_customer(&c).await?;
    Ok(Json(c))
}

pub(super) async fn delete_customer(
    State(app): State<AppState>,
    _: Agent,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    app.hub.delete_customer(CustomerId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- conversations ----

#[derive(Deserialize)]
pub(super) struct ConversationQuery {
    status: Option<ConversationStatus>,
    agent_id: Option<u64>,
    customer_id: Option<u64>,
    team: Option<String>,
    limit: Option<usize>,
    cursor: Option<usize>,
}

pub(super) async fn list_conversations(
    State(app): State<AppState>,
    _: Agent,
    query: Result<Query<ConversationQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let limit = page_size(q.limit);
    let mut found = Vec::new();
    for c in app.hub.conversation_records() {
        let c = c?;
        let keep = q.status.is_none_or(|s| s == c.status)
            && q.agent_id.is_none_or(|a| c.agent_id == Some(AgentId(a)))
            && q.customer_id
                .is_none_or(|id| c.customer_id == CustomerId(id))
            && q.team
                .as_deref()
                .is_none_or(|t| c.team.as_deref() == Some(t));
        if keep {
            found.push(c);
        }
    }
    found.sort_by_key(|c| (std::cmp::Reverse(c.updated_at), std::cmp::Reverse(c.id)));
    let start = q.cursor.unwrap_or(0).min(found.len());
    let end = (start + limit).min(found.len());
    let views = found[start..end]
        .iter()
        .map(|c| app.hub.view_record(c))
        .collect::<Result<Vec<_>, _>>()?;
    let next = (end < found.len()).then(|| end.to_string());
    Ok(Json(json!({ "conversations": views, "next_cursor": next })))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u32>,
}

pub(super) async fn get_conversation(
    State(app): State<AppState>,
    Agent(actor, _): Agent,
    Path(id): Path<u64>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(p) = query?;
    let id = ConversationId(id);
    let record = app
        .hub
        .store()
        .conversation(id)?
        .ok_or_else(|| ApiError::not_found("no such conversation"))?;
    let view = app.hub.view_record(&record)?;
    let page = app.hub.history(
        &actor,
        &History {
            conversation_id: id,
            before: p.before,
            after: p.after,
            limit: p.limit,
        },
    )?;
    let notes = app.hub.notes(id)?;
    Ok(Json(json!({
        "conversation": view,
        "messages": page.messages,
        "has_more": page.has_more,
        "notes": notes,
    })))
}

// ---- agents ----

pub(super) async fn list_agents(
    State(app): State<AppState>,
    _: Admin,
) -> ApiResult<impl IntoResponse> {
    let agents = app.hub.store().agents()?;
    let routing = app.hub.routing();
    let list: Vec<Value> = agents
        .iter()
        .map(|a| {
            let p = routing.presence(a.id);
            let mut v = serde_json::to_value(a.view()).unwrap_or_default();
            v["status"] = json!(p
                .as_ref()
                .map_or(switchboard_protocol::model::AgentStatus::Offline, |p| p
                    .status));
            v["active"] = json!(p.map_or(0, |p| p.active));
            v
        })
        .collect();
    Ok(Json(json!({ "agents": list })))
}

#[derive(Deserialize)]
pub(super) struct CreateAgent {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    teams: Vec<String>,
}

pub(super) async fn create_agent(
    State(app): State<AppState>,
    _: Admin,
    body: Result<Json<CreateAgent>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(b) = body?;
    let new = NewAgent {
        email: b.email,
        name: b.name,
        password: b.password,
        role: b.role.unwrap_or(Role::Agent),
        capacity: b.capacity.unwrap_or(app.config.default_capacity),
        teams: b.teams,
    };
    let agent = app.hub.create_agent(new).await?;
    Ok((StatusCode::CREATED, Json(agent.view())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateAgent {
    name: Option<String>,
    role: Option<Role>,
    capacity: Option<u32>,
    password: Option<String>,
    disabled: Option<bool>,
    teams: Option<Vec<String>>,
}

pub(super) async fn update_agent(
    State(app): State<AppState>,
    Admin(me, my_token): Admin,
    Path(id): Path<u64>,
    body: Result<Json<UpdateAgent>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(b) = body?;
    if me.agent_id() == Some(AgentId(id))
        && (b.disabled == Some(true) || b.role == Some(Role::Agent))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            "you cannot disable or demote yourself",
        ));
    }
    let changes = AgentChanges {
        name: b.name,
        role: b.role,
        capacity: b.capacity,
        password: b.password,
        disabled: b.disabled,
        teams: b.teams,
    };
    // Changing your own password signs out your other devices, not this one.
    let keep = (me.agent_id() == Some(AgentId(id))).then_some(my_token.as_str());
    let agent = app.hub.update_agent(AgentId(id), changes, keep).await?;
    Ok(Json(agent.view()))
}

/// Deletes an account (`invalid_state` for your own, and for the last
/// enabled admin): its tokens are revoked, its sessions closed (4503), its
/// open conversations requeued as when it is disabled.
pub(super) async fn delete_agent(
    State(app): State<AppState>,
    Admin(me, _): Admin,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    if me.agent_id() == Some(AgentId(id)) {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            "you cannot delete yourself",
        ));
    }
    app.hub.delete_agent(AgentId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- dashboard ----

pub(super) async fn stats(State(app): State<AppState>, _: Agent) -> ApiResult<impl IntoResponse> {
    let mut open = 0u64;
    let (mut frt_sum, mut frt_n) = (0u64, 0u64);
    let (mut rating_sum, mut ratings) = (0u64, 0u64);
    let (mut sent_sum, mut sent_n) = (0f64, 0u64);
    let mut by_day: std::collections::BTreeMap<u64, (f64, u64)> = Default::default();
    for c in app.hub.conversation_records() {
        let c = c?;
        open += u64::from(c.is_open());
        if let Some(first) = c.first_response_at {
            frt_sum += first.saturating_sub(c.created_at);
            frt_n += 1;
        }
        if let Some(r) = &c.rating {
            rating_sum += u64::from(r.score);
            ratings += 1;
        }
        if c.sentiment_count > 0 {
            sent_sum += f64::from(c.sentiment_sum);
            sent_n += u64::from(c.sentiment_count);
            let day = by_day.entry(c.created_at / 86_400_000).or_default();
            day.0 += f64::from(c.sentiment_sum);
            day.1 += u64::from(c.sentiment_count);
        }
    }
    let (queue_length, agents_online) = {
        let r = app.hub.routing();
        (r.queue_len(), r.online_agents())
    };
    let avg = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
    let trend: Vec<Value> = by_day
        .iter()
        .rev()
        .take(30)
        .rev()
        .map(|(day, (sum, n))| json!({ "day": day_name(*day), "avg": sum / *n as f64, "messages": n }))
        .collect();
    Ok(Json(json!({
        "open_conversations": open,
        "queue_length": queue_length,
        "agents_online": agents_online,
        "avg_first_response_ms": (frt_n > 0).then(|| frt_sum / frt_n),
        "avg_rating": avg(rating_sum as f64, ratings),
        "ratings": ratings,
        "avg_sentiment": avg(sent_sum, sent_n),
        "sentiment_by_day": trend,
    })))
}

/// `YYYY-MM-DD` of a day number since the epoch (civil-from-days, proleptic Gregorian).
fn day_name(days: u64) -> String {
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_names() {
        assert_eq!(super::day_name(0), "1970-01-01");
        assert_eq!(super::day_name(20_414), "2025-11-22");
    }
}
