//! Owns the HTTP side of the atomic batch endpoint (`POST …/core-entities/batch`,
//! `POST /batch`): parses the body, runs [`store::batch::apply`] in one write transaction and
//! shapes the answer. The transaction and the wire types live in `store::batch`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::store::StoreError;
use crate::store::batch::{self as store_batch, BatchRequest, OpFailed};

use super::{AdminState, json_response, parse_body};

pub(super) async fn handle(
    state: &AdminState,
    cp_id: String,
    body: &[u8],
) -> Result<Response, StoreError> {
    let req: BatchRequest = serde_json::from_value(parse_body(body)?)
        .map_err(|e| StoreError::BadRequest(format!("invalid batch: {e}")))?;
    let cp = cp_id.clone();
    let result = state
        .write(cp_id, req.expected_revision, move |tx| {
            store_batch::apply(tx, &cp, req.operations)
        })
        .await;
    match result {
        Ok((results, revision)) => Ok(json_response(
            StatusCode::OK,
            json!({"revision": revision, "results": results}),
        )),
        Err(StoreError::Batch(failed)) => Ok(failed.into_response()),
        Err(e) => Err(e),
    }
}

impl IntoResponse for Box<OpFailed> {
    fn into_response(self) -> Response {
        let (status, error) = self.error.to_kong();
        let what = format!("{:?} {}", self.op.op, self.op.kind).to_lowercase();
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            json!({
                "message": format!("operation {} ({what}) failed: {message}; nothing was applied", self.index),
                "operation_index": self.index,
                "error": error,
            }),
        )
    }
}
