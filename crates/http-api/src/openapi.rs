//! The OpenAPI document of the merchant API: paths and schemas derived from
//! the handlers' `#[utoipa::path]` and the wire types (`routes.rs`,
//! `wire.rs`), plus what every operation shares (bearer keys, `400`/`401`,
//! `Idempotency-Key` on `POST`).

use domain::{Currency, PaymentId, SubscriptionId, TokenId};
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

/// The schemas the error answers refer to (no handler names them).
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(crate::error::ErrorBody)))]
pub(crate) struct ErrorSchemas;

/// The error answers of every operation, by operation id or by rule
/// (`answers.tsv` says how it reads).
const ERROR_ANSWERS: &str = include_str!("answers.tsv");

/// The links between operations (`links.tsv` says how it reads).
const LINKS: &str = include_str!("links.tsv");

/// The data lines of a tab-separated table: `#` starts a comment line.
fn table_rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').collect())
}

/// Adds the links of `links.tsv` that start at operation `id` to its
/// answers, each named after the operation it leads to.
fn add_links(id: &str, operation: &mut Value) {
    for row in table_rows(LINKS) {
        if let [from, status, to, parameter, expression] = row[..]
            && from == id
        {
            operation["responses"][status]["links"][to] =
                json!({ "operationId": to, "parameters": { parameter: expression } });
        }
    }
}

/// `(who, status, description)` of each line of `answers.tsv`.
fn error_answers() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    table_rows(ERROR_ANSWERS).filter_map(|row| match row[..] {
        [who, status, description] => Some((who, status, description)),
        _ => None,
    })
}

/// Whether a line's `who` covers the operation `id` of `method path`.
fn covers(who: &str, id: &str, path: &str, method: &str) -> bool {
    match who {
        "every" => true,
        "{id}" => path.contains("{id}"),
        "post" => method == "post",
        operation => operation == id,
    }
}

/// The resources whose routes take an `{id}`: where their routes start,
/// what the id names, and the prefix every such id has.
const RESOURCE_IDS: &[(&str, &str, &str)] = &[
    ("/v1/payments/", "payment", PaymentId::PREFIX),
    ("/v1/tokens/", "token", TokenId::PREFIX),
    ("/v1/subscriptions/", "subscription", SubscriptionId::PREFIX),
];

/// The `{id}` parameter of `path`'s operations, with the pattern its
/// resource's ids have (any other id is a `404`).
fn id_parameter(path: &str) -> Option<Value> {
    let (_, what, prefix) = RESOURCE_IDS
        .iter()
        .find(|(start, ..)| path.starts_with(start) && path.contains("{id}"))?;
    Some(json!({
        "name": "id", "in": "path", "required": true,
        "description": format!("The {what}'s id ({prefix}…)"),
        "schema": { "type": "string", "pattern": format!("^{prefix}[A-Za-z0-9_-]+$"), "maxLength": 64 },
    }))
}

/// A time as the API reads it (RFC 3339, in range field by field).
const RFC_3339: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// What the derived schemas cannot say by attribute, each rule as the API
/// enforces it, so that a request the document allows is accepted and one
/// it forbids is refused.
fn tighten(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    // Every known code, upper and lower case (any case is accepted).
    let codes: Vec<String> = Currency::codes()
        .flat_map(|code| [code.to_owned(), code.to_ascii_lowercase()])
        .collect();
    schemas["Amount"]["properties"]["currency"]["enum"] = json!(codes);
    // RFC 3339, as the API reads times.
    for (schema, property) in [("CreateSubscription", "start_at"), ("Advance", "to")] {
        schemas[schema]["properties"][property]["pattern"] = json!(RFC_3339);
    }
    // An SBP subscription service goes with an SBP method only.
    schemas["CreatePayment"]["if"] = json!({
        "required": ["subscription_service"],
        "properties": { "subscription_service": { "type": "object" } },
    });
    schemas["CreatePayment"]["then"] = json!({
        "properties": { "method": { "properties": { "type": { "enum": ["fps", "fps_binding"] } } } },
    });
    // A saved token needs the merchant's consent (`save_token`) or the
    // customer's (the widget's box), never both.
    schemas["CreatePayment"]["not"] = json!({
        "required": ["save_token", "method"],
        "properties": {
            "save_token": { "const": true },
            "method": { "required": ["recurrent_checkbox"], "properties": { "recurrent_checkbox": { "const": true } } },
        },
    });
    for request in ["CreatePayment", "CreateSubscription", "UpdateSubscription"] {
        schemas[request]["properties"]["metadata"] = json!({
            "type": ["object", "null"],
            "description": "The merchant's own data, returned as given: at most 50 keys of at most 40 characters, each value a string of at most 500",
            "maxProperties": 50,
            "propertyNames": { "maxLength": 40 },
            "additionalProperties": { "type": "string", "maxLength": 500 },
        });
    }
    // The longest period: a year, in any unit.
    schemas["IntervalRequest"]["oneOf"] = json!([
        { "properties": { "unit": { "const": "day" }, "count": { "maximum": 365 } } },
        { "properties": { "unit": { "const": "week" }, "count": { "maximum": 52 } } },
        { "properties": { "unit": { "const": "month" }, "count": { "maximum": 12 } } },
    ]);
    schemas["Advance"]["oneOf"] = json!([
        { "required": ["seconds"], "properties": { "seconds": { "type": "integer" }, "to": { "type": "null" } } },
        { "required": ["to"], "properties": { "to": { "type": "string" }, "seconds": { "type": "null" } } },
    ]);
    let paths = &mut doc["paths"];
    for (list, prefix) in [
        ("/v1/payments", PaymentId::PREFIX),
        ("/v1/tokens", TokenId::PREFIX),
    ] {
        if let Some(parameters) = paths[list]["get"]["parameters"].as_array_mut() {
            for parameter in parameters
                .iter_mut()
                .filter(|p| p["name"] == "starting_after")
            {
                parameter["schema"]["pattern"] = json!(format!("^{prefix}[A-Za-z0-9_-]+$"));
                parameter["schema"]["maxLength"] = json!(64);
            }
        }
    }
}

/// The OpenAPI 3.1 document of the merchant API: `api` (the routes' own
/// parts) with what every operation shares.
pub(crate) fn complete(api: &OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    doc["info"] = json!({
        "title": "recur merchant API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Recurring payments on the Bank 131 / Smart Glocal acquiring API.",
    });
    doc["components"]["securitySchemes"] =
        json!({ "bearer": { "type": "http", "scheme": "bearer" } });
    doc["security"] = json!([{ "bearer": [] }]);
    tighten(&mut doc);
    let error =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for (_, status, description) in
                error_answers().filter(|(who, ..)| covers(who, &id, path, method))
            {
                let answer = &mut operation["responses"][status];
                let description = match answer["description"].as_str() {
                    Some(own) => format!("{own}; or: {description}"),
                    None => description.to_owned(),
                };
                *answer = json!({ "description": description, "content": error.clone() });
            }
            add_links(&id, operation);
            if method == "post" {
                add_parameter(operation, idempotency_key());
            }
            if let Some(id) = id_parameter(path) {
                add_parameter(operation, id);
            }
        }
    }
    doc
}

fn idempotency_key() -> Value {
    json!({ "name": "Idempotency-Key", "in": "header", "required": false,
        "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
        "description": "Same key and body: the first answer is replayed for 24 h; another body: 409 idempotency_key_reused" })
}

/// Adds `parameter` first in `operation`'s list.
fn add_parameter(operation: &mut Value, parameter: Value) {
    match operation["parameters"].as_array_mut() {
        Some(parameters) => parameters.insert(0, parameter),
        None => operation["parameters"] = json!([parameter]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use domain::*;
    use ports::{ChargeAttempt, Event};
    use time::OffsetDateTime;

    use crate::openapi_document as document;
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
    fn render<T: serde::Serialize>(view: &T) -> serde_json::Value {
        serde_json::to_value(view).unwrap()
    }

    /// Whether the property's schema admits `null` (OpenAPI 3.1 spelling).
    fn nullable(property: &serde_json::Value) -> bool {
        let types = &property["type"];
        types
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "null"))
            || property["oneOf"]
                .as_array()
                .is_some_and(|o| o.iter().any(|s| s["type"] == "null"))
    }

    /// The rendered object and its schema agree: nothing undocumented,
    /// every required property present, `null` only where the document
    /// allows it, and every field the contract names is there.
    fn check(schema: &str, rendered: &serde_json::Value, contract: &str) {
        let doc = document();
        let schema_doc = &doc["components"]["schemas"][schema];
        let (documented, keys) = (properties(schema), keys(rendered));
        let undocumented: Vec<_> = keys.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{schema}: rendered but not documented: {undocumented:?}"
        );
        for required in schema_doc["required"].as_array().unwrap() {
            let required = required.as_str().unwrap();
            assert!(
                keys.contains(required),
                "{schema}: required {required} not rendered"
            );
        }
        for (key, value) in rendered.as_object().unwrap() {
            if value.is_null() {
                assert!(
                    nullable(&schema_doc["properties"][key]),
                    "{schema}.{key} is rendered null but documented non-null"
                );
            }
        }
        for field in contract.split_whitespace() {
            assert!(
                keys.contains(field),
                "{schema}: the contract's {field} is missing"
            );
        }
    }

    #[test]
    fn the_document_matches_what_the_api_renders() {
        check(
            "Payment",
            &render(&wire::PaymentView::new(&payment(), None)),
            "id status amount customer method bank next_action token error metadata created_at updated_at",
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
            &render(&wire::TokenView::from(&token)),
            "id customer status method source_payment_id created_at finished_at last_checked_at",
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
            &render(&wire::SubscriptionView::at(&subscription, now())),
            "id status token_id amount interval current_period next_charge_at failed_attempts created_at",
        );
        let charge = ChargeAttempt {
            subscription_id: SubscriptionId::parse("sub_1").unwrap(),
            period_index: 0,
            period_start: now(),
            attempt: 1,
            payment_id: Some(PaymentId::parse("pay_1").unwrap()),
            status: ChargeStatus::Pending,
        };
        check(
            "Charge",
            &render(&wire::ChargeView::from(&charge)),
            "period_start attempt payment_id status",
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
            &render(&wire::EventView::from(&event)),
            "id type created_at data",
        );
    }

    #[test]
    fn every_refusal_names_an_operation_the_document_has() {
        let doc = document();
        let operations: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        for row in super::table_rows(super::LINKS) {
            assert_eq!(row.len(), 5, "links.tsv: {row:?}");
            for operation in [row[0], row[2]] {
                assert!(operations.contains(operation), "links.tsv: {operation}");
            }
            assert!(
                doc["paths"]
                    .to_string()
                    .contains(&format!("\"{}\":{{\"operationId\"", row[2])),
                "links.tsv: {row:?} is not in the document"
            );
        }
        for (who, status, _) in super::error_answers() {
            assert!(
                ["every", "{id}", "post"].contains(&who) || operations.contains(who),
                "answers.tsv: {who} is neither a rule nor an operation"
            );
            assert!(status.parse::<u16>().is_ok_and(|s| (400..600).contains(&s)));
        }
        let refund = &doc["paths"]["/v1/payments/{id}/refund"]["post"]["responses"];
        for status in [
            "200", "400", "401", "404", "409", "413", "415", "422", "502", "503",
        ] {
            assert!(refund[status].is_object(), "refund lacks {status}");
        }
        assert!(
            doc["paths"]["/v1/subscriptions"]["post"]["responses"]["404"]["description"]
                .as_str()
                .unwrap()
                .starts_with("No such token")
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
