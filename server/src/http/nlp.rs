//! NLP administration: read and replace the bot's knowledge base, swap in a
//! retrained model, and try the pipeline on a text. Swaps take effect for the
//! next message; no connection is dropped.

use super::api::{Admin, Agent};
use super::{ApiError, AppState};
use crate::nlp::Nlp;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_nlp::{KnowledgeBase, Pipeline};
use switchboard_protocol::ErrorCode;

type ApiResult<T> = Result<T, ApiError>;

fn nlp(app: &AppState) -> ApiResult<Arc<Nlp>> {
    app.hub
        .nlp()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "NLP is switched off (nlp = false)"))
}

pub(super) async fn get_knowledge(
    State(app): State<AppState>,
    _: Agent,
) -> ApiResult<impl IntoResponse> {
    let kb = nlp(&app)?.knowledge();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        kb.to_json(),
    ))
}

/// Replaces the knowledge base (the same JSON shape `GET` returns); kept
/// across restarts. Every intent's team must be a valid team name, or no
/// agent could ever be in it.
pub(super) async fn put_knowledge(
    State(app): State<AppState>,
    _: Admin,
    body: String,
) -> ApiResult<impl IntoResponse> {
    let nlp = nlp(&app)?;
    let kb = KnowledgeBase::from_json(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    for (intent, entry) in &kb.intents {
        if let Some(team) = &entry.team {
            crate::hub::teams::check_team(team)
                .map_err(|e| ApiError::bad_request(format!("intents.{intent}.team: {e}")))?;
        }
    }
    let json = kb.to_json();
    app.hub
        .persist_with(|store| store.put_knowledge_base(&json))
        .await?;
    nlp.swap_knowledge(kb);
    Ok(Json(json!({ "status": "ok" })))
}

#[derive(Deserialize)]
pub(super) struct ModelFile {
    path: PathBuf,
}

/// Loads a model file written by `switchboard nlp train` and swaps it in.
pub(super) async fn load_model(
    State(app): State<AppState>,
    _: Admin,
    body: Result<Json<ModelFile>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(m) = body?;
    let nlp = nlp(&app)?;
    let kb = (*nlp.knowledge()).clone();
    let pipeline = tokio::task::spawn_blocking(move || Pipeline::from_model_file(&m.path, kb))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "model loading was cancelled"))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    nlp.swap_pipeline(pipeline);
    Ok(Json(json!({ "status": "ok" })))
}

#[derive(Deserialize)]
pub(super) struct Text {
    text: String,
}

/// What the pipeline finds in a text, and what the bot would do with it.
pub(super) async fn analyze(
    State(app): State<AppState>,
    _: Agent,
    body: Result<Json<Text>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(t) = body?;
    if t.text.chars().count() > switchboard_protocol::limits::MAX_TEXT_CHARS {
        return Err(ApiError::new(ErrorCode::TooLarge, "text is too long"));
    }
    let nlp = nlp(&app)?;
    let analysis = nlp
        .analyze(&t.text)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::Overloaded, "shutting down"))?;
    let decision = nlp.decide(&analysis, 0, None);
    Ok(Json(json!({ "analysis": analysis, "decision": decision })))
}
