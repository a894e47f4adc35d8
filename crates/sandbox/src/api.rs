//! The bank's API: `POST /api/v1/<method>` and `/api/v2/<method>` (v2 names a
//! session's payments `payment_list`), signed, idempotent, with injectable
//! faults. Every answer, a refusal or an unknown path included, is the bank's
//! JSON envelope.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response as HttpResponse};
use bank131::dto::{PaymentDetails, RecurrentTokenInfo, Response};
use bank131::requests::{
    PaymentRequest, RecurrentRequest, RefundRequest, SessionIdRequest, TokenInfoRequest,
    WidgetTokenRequest,
};
use bank131::{IDEMPOTENCY_HEADER, PROJECT_HEADER, SIGN_HEADER, methods};
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::bank::{Bank, Faults, Refusal};
use crate::cards::Behavior;
use crate::{Sandbox, cards, lock};

pub(crate) fn envelope(status: StatusCode, response: &Response) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(response).unwrap_or_default(),
    )
        .into_response()
}

pub(crate) fn refusal(r: &Refusal) -> HttpResponse {
    let status = if r.code == "authentication_error" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    envelope(status, &Response::error(r.code, &r.description))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        code: "invalid_request",
        description: format!("cannot read the request: {e}"),
    })
}

pub(crate) fn hang_ms(faults: &Faults) -> u64 {
    if faults.hang_ms == 0 {
        3000
    } else {
        faults.hang_ms
    }
}

/// Takes one from a fault counter.
pub(crate) fn take(counter: &mut u32) -> bool {
    let fire = *counter > 0;
    if fire {
        *counter -= 1;
    }
    fire
}

/// The API's versions: v2 renames a session's `acquiring_payments` to `payment_list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Renders an answer as version `version` names its fields.
async fn versioned(version: Version, response: HttpResponse) -> HttpResponse {
    if version == Version::V1 {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return HttpResponse::from_parts(parts, axum::body::Body::empty());
    };
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(session) = value.get_mut("session").and_then(Value::as_object_mut)
        && let Some(payments) = session.remove("acquiring_payments")
    {
        session.insert("payment_list".into(), payments);
    }
    HttpResponse::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&value).unwrap_or_default()),
    )
}

/// Unknown paths answer with the bank's error envelope, not an empty body.
pub(crate) async fn unknown_path(uri: axum::http::Uri) -> HttpResponse {
    envelope(
        StatusCode::NOT_FOUND,
        &Response::error("invalid_request", &format!("unknown path {}", uri.path())),
    )
}

pub(crate) async fn api(
    state: State<Sandbox>,
    UrlPath((version, method)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let version = match version.as_str() {
        "v1" => Version::V1,
        "v2" => Version::V2,
        other => {
            return envelope(
                StatusCode::NOT_FOUND,
                &Response::error("invalid_request", &format!("unknown API version {other}")),
            );
        }
    };
    versioned(version, call(state, method, headers, body).await).await
}

async fn call(
    State(sandbox): State<Sandbox>,
    method: String,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let (redirect, fail_5xx, hang, drop, delay) = {
        let mut f = lock(&sandbox.inner.faults);
        (
            take(&mut f.api_redirects),
            take(&mut f.api_5xx),
            take(&mut f.api_timeouts).then(|| hang_ms(&f)),
            take(&mut f.drop_responses).then(|| hang_ms(&f)),
            f.api_delay_ms,
        )
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if redirect {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, format!("/api/v1/{method}"))],
        )
            .into_response();
    }
    if fail_5xx {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html("<html><body>502 Bad Gateway</body></html>"),
        )
            .into_response();
    }
    if let Some(ms) = hang {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return (StatusCode::GATEWAY_TIMEOUT, "upstream timed out").into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let config = &sandbox.inner.config;
    let project = header(PROJECT_HEADER);
    // SANDBOX_PROJECT may list several projects (a main and a 3-D Secure one).
    let known = config.project.split(',').any(|p| p.trim() == project);
    if !known || !config.partner_keys.verify(&body, &header(SIGN_HEADER)) {
        warn!(%method, "refused: bad project or signature");
        return refusal(&Refusal {
            code: "authentication_error",
            description: "bad X-PARTNER-PROJECT or X-PARTNER-SIGN".into(),
        });
    }
    let base_url = format!("http://{}", header("host"));
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(owner) = session_project(&sandbox, &body)
        && !owner.is_empty()
        && owner != project
    {
        return refusal(&Refusal {
            code: "authorization_error",
            description: format!("the session belongs to project {owner}"),
        });
    }
    let (result, lost) = dispatch(&sandbox, &method, &body, &base_url, key.as_deref());
    if let Ok(response) = &result
        && let Some(created) = response.session.as_ref()
    {
        // A session belongs to the project that created it.
        if let Some(session) = lock(&sandbox.inner.bank).sessions.get_mut(&created.id)
            && session.project.is_empty()
        {
            session.project.clone_from(&project);
        }
    }
    info!(%method, ok = result.is_ok(), "sandbox API call");
    if let Some(ms) = drop.or(lost.then(|| hang_ms(&lock(&sandbox.inner.faults)))) {
        // Executed, but the answer never arrives in time.
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match result {
        Ok(response) => envelope(StatusCode::OK, &response),
        Err(r) => refusal(&r),
    }
}

/// The project owning the session a request names (`session_id`), if any.
fn session_project(sandbox: &Sandbox, body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let id = value
        .get("session_id")
        .or_else(|| value.get("acquiring_widget")?.get("session_id"))?
        .as_str()?;
    lock(&sandbox.inner.bank)
        .sessions
        .get(id)
        .map(|s| s.project.clone())
}

/// `token/info` about a card: its brand and last digits (never kept).
fn card_info(card: &Value) -> Result<RecurrentTokenInfo, Refusal> {
    let number = card["bank_card"]["number"].as_str().ok_or(Refusal {
        code: "invalid_request",
        description: "card.bank_card.number is required".into(),
    })?;
    cards::behavior(number).map_err(|e| Refusal {
        code: "invalid_request",
        description: e.into(),
    })?;
    Ok(RecurrentTokenInfo {
        token: String::new(),
        created_at: None,
        finished_at: None,
        is_active: true,
        kind: Some("card".into()),
        brand: Some(cards::brand(number).into()),
        last4: Some(number[number.len().saturating_sub(4)..].to_owned()),
    })
}

/// Runs one API method. The flag says the answer must be lost (test card `…5126`).
pub(crate) fn dispatch(
    sandbox: &Sandbox,
    method: &str,
    body: &[u8],
    base_url: &str,
    key: Option<&str>,
) -> (Result<Response, Refusal>, bool) {
    let read_only = matches!(
        method,
        methods::SESSION_STATUS | methods::TOKEN_INFO | methods::RECURRENT_STATUS
    );
    let claim = |bank: &mut Bank| {
        if read_only {
            Ok(())
        } else {
            bank.claim_key(key)
        }
    };
    let mut lost = false;
    let result = match method {
        methods::SESSION_CREATE => {
            if let Some(refusal) = injected_refusal(sandbox, |f| &mut f.refuse_creates) {
                return (Err(refusal), false);
            }
            parse::<Value>(body).and_then(|v| {
                sandbox.act(|b| {
                    claim(b)?;
                    b.create_session(&v, base_url)
                })
            })
        }
        methods::SESSION_START_PAYMENT | methods::SESSION_INIT_PAYMENT => {
            if let Some(refusal) = injected_refusal(sandbox, |f| &mut f.refuse_starts) {
                return (Err(refusal), false);
            }
            parse::<PaymentRequest>(body).and_then(|request| {
                lost = matches!(&request.payment_details, PaymentDetails::Card { card } if card
                .bank_card
                .as_ref()
                .is_some_and(|c| cards::behavior(&c.number) == Ok(Behavior::DropResponse)));
                let two_step = method == methods::SESSION_START_PAYMENT;
                sandbox.act(|b| {
                    claim(b)?;
                    b.start_payment(&request, two_step, base_url)
                })
            })
        }
        methods::SESSION_CONFIRM
        | methods::SESSION_CANCEL
        | methods::SESSION_CAPTURE
        | methods::SESSION_STATUS => parse::<SessionIdRequest>(body).and_then(|r| {
            sandbox.act(|b| {
                claim(b)?;
                match method {
                    methods::SESSION_CONFIRM => b.confirm(&r.session_id),
                    methods::SESSION_CANCEL => b.cancel(&r.session_id),
                    methods::SESSION_CAPTURE => b.capture(&r.session_id),
                    _ => b.status(&r.session_id),
                }
            })
        }),
        methods::SESSION_REFUND => parse::<RefundRequest>(body).and_then(|r| {
            sandbox.act(|b| {
                claim(b)?;
                b.refund(&r.session_id, r.amount_details)
            })
        }),
        methods::TOKEN => parse::<WidgetTokenRequest>(body).and_then(|r| {
            let checkbox = r.acquiring_widget.show_recurrent_checkbox.unwrap_or(false);
            sandbox.act(|b| {
                claim(b)?;
                b.widget_token(&r.acquiring_widget.session_id, checkbox)
            })
        }),
        methods::TOKEN_INFO => parse::<Value>(body).and_then(|v| {
            // The official SDK asks about a card ({"type": "card", "card":
            // …}); seed 001 about a recurrent token.
            let info = if v["type"] == "card" {
                card_info(&v["card"])?
            } else {
                let r: TokenInfoRequest = serde_json::from_value(v).map_err(|e| Refusal {
                    code: "invalid_request",
                    description: format!("cannot read the request: {e}"),
                })?;
                lock(&sandbox.inner.bank).token_info(&r.recurrent_token.token)?
            };
            Ok(Response {
                info: Some(info),
                ..Response::ok()
            })
        }),
        methods::RECURRENT_STATUS => parse::<RecurrentRequest>(body).and_then(|r| {
            let info = lock(&sandbox.inner.bank).token_info(&r.recurrent.token)?;
            Ok(Response {
                recurrent: Some(info),
                ..Response::ok()
            })
        }),
        methods::RECURRENT_DISABLE => parse::<RecurrentRequest>(body).and_then(|r| {
            let mut bank = lock(&sandbox.inner.bank);
            claim(&mut bank)?;
            let info = bank.disable_token(&r.recurrent.token)?;
            sandbox.persist(&bank);
            Ok(Response {
                recurrent: Some(info),
                ..Response::ok()
            })
        }),
        other => Err(Refusal {
            code: "invalid_request",
            description: format!("unknown method {other}"),
        }),
    };
    (result, lost)
}

/// The next refusal a fault list injects (`refuse_creates`,
/// `refuse_starts`), answered without executing anything.
fn injected_refusal(
    sandbox: &Sandbox,
    list: impl FnOnce(&mut Faults) -> &mut Vec<String>,
) -> Option<Refusal> {
    let code = {
        let mut faults = lock(&sandbox.inner.faults);
        let codes = list(&mut faults);
        (!codes.is_empty()).then(|| codes.remove(0))?
    };
    let code: &'static str = match code.as_str() {
        "internal_error" => "internal_error",
        "provider_unavailable" => "provider_unavailable",
        "invalid_request" => "invalid_request",
        _ => "provider_error",
    };
    Some(Refusal {
        code,
        description: "fault: refused without being executed".into(),
    })
}
