//! The control API under `/sandbox/`: act as the customer, disable tokens,
//! inject faults, read the ledger and the webhook deliveries.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use bank131::dto::Response;
use serde::Deserialize;
use serde_json::json;

use crate::api::envelope;
use crate::bank::{Faults, Refusal};
use crate::{Sandbox, lock};

fn control(result: Result<Response, Refusal>) -> HttpResponse {
    match result {
        Ok(response) => envelope(StatusCode::OK, &response),
        Err(r) => envelope(
            StatusCode::CONFLICT,
            &Response::error(r.code, &r.description),
        ),
    }
}

pub(crate) async fn control_session(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    control(lock(&sandbox.inner.bank).status(&session).map(|(r, _)| r))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Approve {
    approve: bool,
}

pub(crate) async fn control_three_ds(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
    axum::Json(a): axum::Json<Approve>,
) -> HttpResponse {
    control(sandbox.act(|b| b.three_ds(&session, a.approve)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PayQr {
    pay: bool,
}

pub(crate) async fn control_qr(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
    axum::Json(p): axum::Json<PayQr>,
) -> HttpResponse {
    control(sandbox.act(|b| b.qr(&session, p.pay)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ControlWidget {
    number: String,
    #[serde(default)]
    save: bool,
    #[serde(default)]
    customer: Option<String>,
}

pub(crate) async fn control_widget(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
    axum::Json(w): axum::Json<ControlWidget>,
) -> HttpResponse {
    control(sandbox.act(|b| b.widget_pay(&token, &w.number, w.save, w.customer.as_deref())))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenBody {
    token: String,
}

pub(crate) async fn control_disable_token(
    State(sandbox): State<Sandbox>,
    axum::Json(t): axum::Json<TokenBody>,
) -> HttpResponse {
    let mut bank = lock(&sandbox.inner.bank);
    let result = bank.disable_token(&t.token).map(|info| Response {
        recurrent: Some(info),
        ..Response::ok()
    });
    sandbox.persist(&bank);
    control(result)
}

pub(crate) async fn control_token_info(
    State(sandbox): State<Sandbox>,
    axum::Json(t): axum::Json<TokenBody>,
) -> HttpResponse {
    control(
        lock(&sandbox.inner.bank)
            .token_info(&t.token)
            .map(|info| Response {
                info: Some(info),
                ..Response::ok()
            }),
    )
}

pub(crate) async fn control_ledger(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(json!({ "data": sandbox.ledger() })).into_response()
}

pub(crate) async fn get_faults(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(lock(&sandbox.inner.faults).clone()).into_response()
}

pub(crate) async fn set_faults(
    State(sandbox): State<Sandbox>,
    axum::Json(faults): axum::Json<Faults>,
) -> HttpResponse {
    sandbox.set_faults(faults.clone());
    axum::Json(faults).into_response()
}

pub(crate) async fn control_webhooks(State(sandbox): State<Sandbox>) -> HttpResponse {
    axum::Json(sandbox.webhook_stats()).into_response()
}
