//! The merchant API's routes as one table, from which both the router and
//! the OpenAPI document are made, so the document cannot drift from the code.

use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use crate::{ApiState, handlers};

/// One operation of the API.
pub struct Operation {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The axum path (`/v1/payments/{id}`).
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The request body's schema name.
    pub request: Option<&'static str>,
    /// Success status and the response schema name.
    pub response: (u16, &'static str),
    /// Error statuses it may answer (beyond 400/401).
    pub errors: &'static [u16],
    /// Only with `RECUR_TEST_CLOCK=true`.
    pub test_clock: bool,
    /// The handler.
    pub handler: fn() -> MethodRouter<ApiState>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

macro_rules! op {
    ($method:literal $path:literal, $summary:literal, $request:expr, $response:expr, $errors:expr, $router:ident($handler:path)) => {
        op!($method $path, $summary, $request, $response, $errors, $router($handler), false)
    };
    ($method:literal $path:literal, $summary:literal, $request:expr, $response:expr, $errors:expr, $router:ident($handler:path), $clock:expr) => {
        Operation {
            method: $method,
            path: $path,
            summary: $summary,
            request: $request,
            response: $response,
            errors: $errors,
            test_clock: $clock,
            handler: || $router($handler),
        }
    };
}

/// Every merchant API operation (all need `Authorization: Bearer`).
pub fn operations() -> Vec<Operation> {
    vec![
        op!("POST" "/v1/payments", "Start a payment (card, widget, token, fps, fps_binding)", Some("CreatePayment"), (201, "Payment"), &[409, 422, 502], post(handlers::create_payment)),
        op!("GET" "/v1/payments", "A customer's payments, newest first (`?customer_reference=`)", None, (200, "PaymentList"), &[], get(handlers::list_payments)),
        op!("GET" "/v1/payments/{id}", "A payment", None, (200, "Payment"), &[404], get(handlers::get_payment)),
        op!("POST" "/v1/payments/{id}/confirm", "Confirm a payment in requires_confirmation", None, (200, "Payment"), &[404, 409], post(handlers::confirm_payment)),
        op!("POST" "/v1/payments/{id}/cancel", "Cancel a payment in requires_confirmation", None, (200, "Payment"), &[404, 409], post(handlers::cancel_payment)),
        op!("POST" "/v1/payments/{id}/refund", "Refund a succeeded payment (full by default)", Some("Refund"), (200, "Payment"), &[404, 409, 422, 502], post(handlers::refund_payment)),
        op!("GET" "/v1/tokens", "A customer's tokens (`?customer_reference=`)", None, (200, "TokenList"), &[], get(handlers::list_tokens)),
        op!("GET" "/v1/tokens/{id}", "A token; `?refresh=true` asks the bank first", None, (200, "Token"), &[404, 502], get(handlers::get_token)),
        op!("POST" "/v1/tokens/{id}/disable", "Disable a token (202 until the bank confirms)", None, (202, "Token"), &[404], post(handlers::disable_token)),
        op!("POST" "/v1/subscriptions", "Create a subscription", Some("CreateSubscription"), (201, "Subscription"), &[404, 422], post(handlers::create_subscription)),
        op!("GET" "/v1/subscriptions/{id}", "A subscription", None, (200, "Subscription"), &[404], get(handlers::get_subscription)),
        op!("POST" "/v1/subscriptions/{id}", "Change token, amount or metadata", Some("UpdateSubscription"), (200, "Subscription"), &[404, 409, 422], post(handlers::update_subscription)),
        op!("GET" "/v1/subscriptions/{id}/charges", "A subscription's charge attempts", None, (200, "ChargeList"), &[404], get(handlers::subscription_charges)),
        op!("POST" "/v1/subscriptions/{id}/pause", "Pause charging", None, (200, "Subscription"), &[404, 409], post(handlers::pause_subscription)),
        op!("POST" "/v1/subscriptions/{id}/resume", "Resume charging", None, (200, "Subscription"), &[404, 409], post(handlers::resume_subscription)),
        op!("POST" "/v1/subscriptions/{id}/cancel", "Cancel for good", None, (200, "Subscription"), &[404], post(handlers::cancel_subscription)),
        op!("GET" "/v1/events", "The event feed, oldest first (`?after=&limit=`)", None, (200, "EventList"), &[], get(handlers::list_events)),
        op!("GET" "/v1/test/clock", "The test clock", None, (200, "Clock"), &[], get(handlers::get_clock), true),
        op!("POST" "/v1/test/clock/advance", "Move the test clock forward and run due jobs", Some("Advance"), (200, "Clock"), &[409], post(handlers::advance_clock), true),
    ]
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn schemas() -> Value {
    let amount = json!({ "type": "object", "required": ["value", "currency"], "properties": {
        "value": { "type": "integer", "format": "int64", "minimum": 0, "description": "minor units" },
        "currency": { "type": "string", "example": "RUB", "description": "ISO 4217, any case in, upper case out" } } });
    let customer = json!({ "type": "object", "required": ["reference"], "properties": { "reference": { "type": "string" } } });
    let time = json!({ "type": "string", "format": "date-time" });
    let list = |item: &str| json!({ "type": "object", "properties": { "data": { "type": "array", "items": reference(item) } } });
    json!({
        "Amount": amount,
        "Customer": customer,
        "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
            "code": { "type": "string" }, "message": { "type": "string" } } } } },
        "CreatePayment": { "type": "object", "required": ["customer", "amount", "method"], "properties": {
            "customer": reference("Customer"), "amount": reference("Amount"),
            "method": { "type": "object", "required": ["type"], "properties": {
                "type": { "type": "string", "enum": ["card", "widget", "token", "fps", "fps_binding"] },
                "card": { "type": "object", "properties": {
                    "number": { "type": "string" }, "expiry_month": { "type": "string" }, "expiry_year": { "type": "string" },
                    "security_code": { "type": "string" }, "holder_name": { "type": "string" } } },
                "token_id": { "type": "string" },
                "initiator": { "type": "string", "enum": ["merchant", "client"] } } },
            "save_token": { "type": "boolean" },
            "confirmation": { "type": "string", "enum": ["automatic", "manual"] },
            "return_url": { "type": "string", "format": "uri" },
            "subscription_service": { "type": "object", "properties": { "id": { "type": "string" }, "name": { "type": "string" } } },
            "description": { "type": "string" },
            "metadata": { "type": "object" } } },
        "Payment": { "type": "object", "properties": {
            "id": { "type": "string", "example": "pay_…" },
            "object": { "type": "string", "enum": ["payment"] },
            "status": { "type": "string", "enum": ["pending", "requires_action", "requires_confirmation", "succeeded", "failed", "cancelled"] },
            "save_token": { "type": "boolean" },
            "confirmation": { "type": "string", "enum": ["automatic", "manual"] },
            "description": { "type": "string", "nullable": true },
            "return_url": { "type": "string", "nullable": true },
            "amount": reference("Amount"), "refunded_amount": reference("Amount"), "customer": reference("Customer"),
            "method": { "type": "object" },
            "bank": { "type": "object", "properties": { "session_id": { "type": "string" }, "session_status": { "type": "string" }, "payment_status": { "type": "string" } } },
            "next_action": { "type": "object", "nullable": true, "properties": {
                "type": { "type": "string", "enum": ["redirect", "qr", "widget"] }, "url": { "type": "string" }, "method": { "type": "string" },
                "params": { "type": "object" }, "content": { "type": "string" }, "public_token": { "type": "string" } } },
            "token": { "type": "object", "nullable": true, "properties": { "id": { "type": "string" }, "status": { "type": "string" } } },
            "error": { "type": "object", "nullable": true, "properties": { "code": { "type": "string" }, "message": { "type": "string" } } },
            "metadata": { "type": "object", "nullable": true },
            "created_at": time, "updated_at": time } },
        "PaymentList": list("Payment"),
        "Refund": { "type": "object", "properties": { "amount": reference("Amount") } },
        "Token": { "type": "object", "properties": {
            "id": { "type": "string", "example": "tok_…" }, "object": { "type": "string", "enum": ["token"] }, "customer": reference("Customer"),
            "subscription_service_id": { "type": "string", "nullable": true },
            "status": { "type": "string", "enum": ["active", "disabling", "disabled"] },
            "method": { "type": "object", "properties": { "type": { "type": "string", "enum": ["card", "fps"] } } },
            "source_payment_id": { "type": "string" }, "created_at": time, "finished_at": time, "last_checked_at": time } },
        "TokenList": list("Token"),
        "CreateSubscription": { "type": "object", "required": ["customer", "token_id", "amount", "interval"], "properties": {
            "customer": reference("Customer"), "token_id": { "type": "string" }, "amount": reference("Amount"),
            "interval": { "type": "object", "properties": { "unit": { "type": "string", "enum": ["day", "week", "month"] }, "count": { "type": "integer" } } },
            "start_at": time, "description": { "type": "string" }, "metadata": { "type": "object" } } },
        "UpdateSubscription": { "type": "object", "properties": {
            "token_id": { "type": "string" }, "amount": reference("Amount"), "metadata": { "type": "object" } } },
        "Subscription": { "type": "object", "properties": {
            "id": { "type": "string", "example": "sub_…" },
            "object": { "type": "string", "enum": ["subscription"] },
            "customer": reference("Customer"), "start_at": time,
            "description": { "type": "string", "nullable": true }, "metadata": { "type": "object", "nullable": true },
            "status": { "type": "string", "enum": ["active", "past_due", "paused", "cancelled"] },
            "token_id": { "type": "string" }, "amount": reference("Amount"),
            "interval": { "type": "object", "properties": { "unit": { "type": "string" }, "count": { "type": "integer" } } },
            "current_period": { "type": "object", "properties": { "start": time, "end": time } },
            "next_charge_at": time, "failed_attempts": { "type": "integer" }, "created_at": time } },
        "Charge": { "type": "object", "properties": {
            "period_start": time, "period_index": { "type": "integer" }, "attempt": { "type": "integer" }, "payment_id": { "type": "string" },
            "status": { "type": "string", "enum": ["pending", "succeeded", "failed"] } } },
        "ChargeList": list("Charge"),
        "Event": { "type": "object", "properties": {
            "id": { "type": "string", "example": "evt_…" }, "type": { "type": "string", "example": "payment.succeeded" },
            "created_at": time, "data": { "type": "object" } } },
        "EventList": { "type": "object", "properties": { "data": { "type": "array", "items": reference("Event") }, "has_more": { "type": "boolean" } } },
        "Clock": { "type": "object", "properties": { "now": time } },
        "Advance": { "type": "object", "properties": { "seconds": { "type": "integer" }, "to": time } },
    })
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Malformed request",
        401 => "Missing or wrong bearer key",
        404 => "Not found",
        409 => "State conflict or idempotency mismatch",
        422 => "Semantically refused (e.g. token_inactive)",
        502 => "The bank failed",
        _ => "Error",
    }
}

/// The OpenAPI 3.0 document of the merchant API.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut responses = Map::new();
        let (ok, schema) = op.response;
        responses.insert(ok.to_string(), json!({ "description": status_text(ok), "content": { "application/json": { "schema": reference(schema) } } }));
        for code in [400, 401].iter().chain(op.errors) {
            responses.insert(code.to_string(), json!({ "description": status_text(*code), "content": { "application/json": { "schema": reference("Error") } } }));
        }
        let mut operation = json!({
            "summary": op.summary,
            "operationId": format!("{} {}", op.method, op.path),
            "responses": responses,
        });
        let mut parameters = Vec::new();
        if op.path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        if op.method == "POST" {
            parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string" },
                "description": "Same key and body: the first answer is replayed for 24 h; another body: 409 idempotency_key_reused" }));
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(request) = op.request {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": reference(request) } } });
        }
        if op.test_clock {
            operation["description"] =
                Value::String("Only when RECUR_TEST_CLOCK=true; otherwise 404.".into());
        }
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "recur merchant API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Recurring payments on the Bank 131 / Smart Glocal acquiring API.",
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use domain::*;
    use ports::{ChargeAttempt, Event};
    use time::OffsetDateTime;

    use super::document;
    use crate::wire;

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn properties(schema: &str) -> BTreeSet<String> {
        document()["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &serde_json::Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn payment() -> Payment {
        Payment::new(
            NewPayment {
                id: PaymentId::parse("pay_1").unwrap(),
                customer: CustomerReference::parse("cust-42").unwrap(),
                amount: Money::new(10_000, Currency::RUB).unwrap(),
                method: PaymentMethod::Card,
                save_token: true,
                confirmation: Confirmation::Automatic,
                return_url: None,
                description: None,
                metadata: Some(r#"{"order":"A-1"}"#.into()),
            },
            now(),
        )
        .unwrap()
    }

    /// Every field the API renders is documented, and the contract's fields are there.
    fn check(schema: &str, rendered: &serde_json::Value, contract: &[&str]) {
        let (documented, rendered) = (properties(schema), keys(rendered));
        let undocumented: Vec<_> = rendered.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{schema}: rendered but not documented: {undocumented:?}"
        );
        for field in contract {
            assert!(
                rendered.contains(*field),
                "{schema}: the contract's {field} is missing"
            );
        }
    }

    #[test]
    fn the_document_matches_what_the_api_renders() {
        check(
            "Payment",
            &wire::payment_json(&payment(), None),
            &[
                "id",
                "status",
                "amount",
                "customer",
                "method",
                "bank",
                "next_action",
                "token",
                "error",
                "metadata",
                "created_at",
                "updated_at",
            ],
        );
        let issued = IssuedToken {
            secret: RecurrentTokenSecret::parse("t").unwrap(),
            created_at: None,
            finished_at: None,
            is_active: true,
        };
        let token = RecurrentToken::issued(
            TokenId::parse("tok_1").unwrap(),
            CustomerReference::parse("c").unwrap(),
            &issued,
            TokenMethod::Card,
            PaymentId::parse("pay_1").unwrap(),
            now(),
        );
        check(
            "Token",
            &wire::token_json(&token),
            &[
                "id",
                "customer",
                "status",
                "method",
                "source_payment_id",
                "created_at",
                "finished_at",
                "last_checked_at",
            ],
        );
        let subscription = Subscription::new(
            NewSubscription {
                id: SubscriptionId::parse("sub_1").unwrap(),
                customer: CustomerReference::parse("c").unwrap(),
                token_id: TokenId::parse("tok_1").unwrap(),
                amount: Money::new(99_000, Currency::RUB).unwrap(),
                interval: Interval::new(IntervalUnit::Month, 1).unwrap(),
                start_at: now(),
                description: None,
                metadata: None,
            },
            now(),
        )
        .unwrap();
        check(
            "Subscription",
            &wire::subscription_json(&subscription),
            &[
                "id",
                "status",
                "token_id",
                "amount",
                "interval",
                "current_period",
                "next_charge_at",
                "failed_attempts",
                "created_at",
            ],
        );
        let charge = ChargeAttempt {
            subscription_id: SubscriptionId::parse("sub_1").unwrap(),
            period_index: 0,
            period_start: now(),
            attempt: 1,
            payment_id: PaymentId::parse("pay_1").unwrap(),
            status: ChargeStatus::Pending,
        };
        check(
            "Charge",
            &wire::charge_json(&charge),
            &["period_start", "attempt", "payment_id", "status"],
        );
        let event = Event {
            id: EventId::parse("evt_000000000001").unwrap(),
            kind: "payment.succeeded".into(),
            subject_id: "pay_1".into(),
            data: "{}".into(),
            created_at: now(),
        };
        check(
            "Event",
            &wire::event_json(&event),
            &["id", "type", "created_at", "data"],
        );
    }

    #[test]
    fn every_path_has_its_operations_and_every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for name in text
            .split("#/components/schemas/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
        {
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} is referenced but not defined"
            );
        }
        assert!(doc["paths"]["/v1/subscriptions/{id}"]["get"].is_object());
        assert!(doc["paths"]["/v1/subscriptions/{id}"]["post"].is_object());
    }
}
