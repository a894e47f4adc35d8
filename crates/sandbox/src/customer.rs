//! The customer's pages: 3-D Secure, the SBP QR code and the widget.

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response as HttpResponse};
use bank131::dto::Response;
use serde::Deserialize;

use crate::bank::{Awaiting, Refusal};
use crate::{Sandbox, lock, pages};

fn session_amount(sandbox: &Sandbox, session_id: &str) -> Option<String> {
    let bank = lock(&sandbox.inner.bank);
    let payment = bank.sessions.get(session_id)?.payment.as_ref()?;
    let amount = payment.view.amount_details.as_ref()?;
    Some(format!(
        "{}.{:02} {}",
        amount.amount / 100,
        amount.amount % 100,
        amount.currency.to_uppercase()
    ))
}

fn return_url(sandbox: &Sandbox, session_id: &str) -> Option<String> {
    let bank = lock(&sandbox.inner.bank);
    let payment = bank.sessions.get(session_id)?.payment.as_ref()?;
    payment.view.payment_options.as_ref()?.return_url.clone()
}

pub(crate) async fn three_ds_page(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    match session_amount(&sandbox, &session) {
        Some(amount) => Html(pages::three_ds(&session, &amount)).into_response(),
        None => (StatusCode::NOT_FOUND, Html(pages::done("Unknown payment"))).into_response(),
    }
}

fn after_customer(
    sandbox: &Sandbox,
    session: &str,
    result: Result<Response, Refusal>,
) -> HttpResponse {
    match (result, return_url(sandbox, session)) {
        (Ok(_), Some(url)) => Redirect::to(&url).into_response(),
        (Ok(response), None) => {
            let status = response.session.map(|s| s.status).unwrap_or_default();
            Html(pages::done(&format!("Payment {status}"))).into_response()
        }
        (Err(r), _) => (StatusCode::CONFLICT, Html(pages::done(&r.description))).into_response(),
    }
}

pub(crate) async fn three_ds_choice(
    State(sandbox): State<Sandbox>,
    UrlPath((session, choice)): UrlPath<(String, String)>,
) -> HttpResponse {
    let result = sandbox.act(|b| b.three_ds(&session, choice == "approve"));
    after_customer(&sandbox, &session, result)
}

pub(crate) async fn qr_page(
    State(sandbox): State<Sandbox>,
    UrlPath(session): UrlPath<String>,
) -> HttpResponse {
    let deeplink = {
        let bank = lock(&sandbox.inner.bank);
        bank.sessions
            .get(&session)
            .and_then(|s| s.payment.as_ref())
            .and_then(|p| p.view.customer_interaction.as_ref())
            .and_then(|i| i.inform.as_ref())
            .and_then(|i| i.qr.as_ref())
            .map(|q| q.content.clone())
    };
    match deeplink {
        Some(link) => Html(pages::qr(&session, &link)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(pages::done("No QR code to pay")),
        )
            .into_response(),
    }
}

pub(crate) async fn qr_choice(
    State(sandbox): State<Sandbox>,
    UrlPath((session, choice)): UrlPath<(String, String)>,
) -> HttpResponse {
    let result = sandbox.act(|b| b.qr(&session, choice == "pay"));
    after_customer(&sandbox, &session, result)
}

pub(crate) async fn widget_page(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
) -> HttpResponse {
    let widget = lock(&sandbox.inner.bank).widgets.get(&token).cloned();
    match widget {
        Some(w) => Html(pages::widget(&token, w.show_recurrent_checkbox)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(pages::done("Unknown widget token")),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WidgetPay {
    number: String,
    #[serde(default)]
    save: Option<String>,
    #[serde(default)]
    customer: Option<String>,
}

pub(crate) async fn widget_form(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
    Form(form): Form<WidgetPay>,
) -> HttpResponse {
    let save = form.save.as_deref() == Some("true");
    match sandbox.act(|b| b.widget_pay(&token, &form.number, save, form.customer.as_deref())) {
        // The session now waits for the shop's session/confirm.
        Ok(_) => Redirect::to(&format!("/widget/{token}/wait")).into_response(),
        Err(r) => (StatusCode::CONFLICT, Html(pages::done(&r.description))).into_response(),
    }
}

/// Where the widget's customer waits for the shop: sent on to 3-D Secure
/// when the card needs it, or to the end once the payment finished.
pub(crate) async fn widget_wait(
    State(sandbox): State<Sandbox>,
    UrlPath(token): UrlPath<String>,
) -> HttpResponse {
    let state = {
        let bank = lock(&sandbox.inner.bank);
        bank.widgets
            .get(&token)
            .and_then(|w| bank.sessions.get(&w.session_id))
            .map(|s| (s.view.id.clone(), s.awaiting, s.view.status.clone()))
    };
    match state {
        None => (
            StatusCode::NOT_FOUND,
            Html(pages::done("Unknown widget token")),
        )
            .into_response(),
        Some((session, Awaiting::ThreeDs, _)) => {
            Redirect::to(&format!("/3ds/{session}")).into_response()
        }
        Some((session, _, status)) if status == "accepted" || status == "cancelled" => {
            match return_url(&sandbox, &session) {
                Some(url) => Redirect::to(&url).into_response(),
                None => Html(pages::done(&format!("Payment {status}"))).into_response(),
            }
        }
        Some(_) => Html(pages::widget_waiting()).into_response(),
    }
}
