//! Saved replies over REST: every agent lists them, admins add, change and
//! delete them (docs/api.md, "Saved replies"). Writes return once durable.

use super::api::{Admin, Agent};
use super::{ApiError, AppState};
use crate::hub::replies::ReplyChanges;
use crate::store::SavedReply;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_protocol::AgentId;

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplyBody {
    shortcut: Option<String>,
    text: Option<String>,
}

impl From<ReplyBody> for ReplyChanges {
    fn from(b: ReplyBody) -> ReplyChanges {
        ReplyChanges {
            shortcut: b.shortcut,
            text: b.text,
        }
    }
}

fn view(r: &SavedReply) -> Value {
    json!({
        "id": r.id,
        "shortcut": r.shortcut,
        "text": r.text,
        "updated_at": r.updated_at,
        "updated_by": r.updated_by,
    })
}

/// The acting admin (an admin token always names an agent).
fn admin_id(admin: &Admin) -> AgentId {
    admin.0.agent_id().unwrap_or(AgentId(0))
}

pub(super) async fn list(State(app): State<AppState>, _: Agent) -> ApiResult<impl IntoResponse> {
    let all = app.hub.saved_replies()?;
    Ok(Json(
        json!({ "replies": all.iter().map(view).collect::<Vec<_>>() }),
    ))
}

pub(super) async fn create(
    State(app): State<AppState>,
    admin: Admin,
    body: Result<Json<ReplyBody>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(b) = body?;
    let reply = app
        .hub
        .create_saved_reply(admin_id(&admin), b.into())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&reply))))
}

pub(super) async fn update(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<u64>,
    body: Result<Json<ReplyBody>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(b) = body?;
    let reply = app
        .hub
        .update_saved_reply(admin_id(&admin), id, b.into())
        .await?;
    Ok(Json(view(&reply)))
}

pub(super) async fn delete(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    app.hub.delete_saved_reply(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
