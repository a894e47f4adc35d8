//! Data-driven tests over every JSON example of the provider's pages
//! (`tests/fixtures/*.json`, copied verbatim from the seeds), and signing
//! interoperability with openssl (`tests/fixtures/keys`).

use std::path::{Path, PathBuf};

use bank131::dto::{Response, Session, Webhook};
use bank131::map;
use bank131::requests::{PaymentRequest, WidgetTokenRequest};
use bank131::{Bank131Webhooks, Signer, Verifier};
use domain::*;
use ports::{CreateSession, Instrument, Project, StartPayment, WebhookDecoder, WebhookError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The seeds' JSON, with the `// comments` one example carries removed
/// (only outside strings: `"sdfew^//asdhbv"` is data).
fn read_fixture(name: &str) -> String {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut comment) = (false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if comment {
            if c == '\n' {
                comment = false;
                out.push(c);
            }
            continue;
        }
        if in_string {
            escaped = !escaped && c == '\\';
            in_string = escaped || c != '"';
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && chars.peek() == Some(&'/') {
            comment = true;
            continue;
        }
        out.push(c);
    }
    out
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            Path::new(n)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        })
        .collect();
    names.sort();
    names
}

/// Differences between two JSON values, as `path: left != right` lines.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(
                    &format!("{path}.{key}"),
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

#[test]
fn every_seed_request_serializes_back_field_by_field() {
    let mut checked = 0;
    for name in fixture_names().iter().filter(|n| n.contains("_request_")) {
        let text = read_fixture(name);
        let seed: Value = serde_json::from_str(&text).unwrap();
        let back = if name.contains("widget_token") {
            serde_json::to_value(serde_json::from_str::<WidgetTokenRequest>(&text).unwrap())
                .unwrap()
        } else {
            serde_json::to_value(serde_json::from_str::<PaymentRequest>(&text).unwrap()).unwrap()
        };
        let mut differences = Vec::new();
        diff("$", &seed, &back, &mut differences);
        assert!(
            differences.is_empty(),
            "{name}:\n{}",
            differences.join("\n")
        );
        checked += 1;
    }
    assert_eq!(checked, 8, "every request example of the seeds");
}

fn issued(raw: &str) -> IssuedToken {
    IssuedToken {
        secret: RecurrentTokenSecret::parse(raw).unwrap(),
        created_at: map::parse_time("2020-07-14T13:17:11+03:00"),
        finished_at: map::parse_time("2020-07-31T16:05:42+03:00"),
        is_active: true,
    }
}

const SEED_TOKEN: &str = "feda2b2106a2e8747bbdc4c9f53c7f5f6ab845ffa1b7cc68ca839720af99b3d1";

fn redirect(url: &str, params: &[(&str, &str)]) -> BankFact {
    BankFact::ActionRequired(NextAction::Redirect {
        url: url.into(),
        method: "GET".into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

/// Each webhook example and what it must mean for the payment.
fn expected_webhooks() -> Vec<(&'static str, &'static str, BankFact)> {
    vec![
        (
            "000_webhook_action_required.json",
            "ps_3230",
            redirect(
                "https://bank131.ru?foo=bar",
                &[("paReq", "sdfew^//asdhbv"), ("MD", "abc75daefnn")],
            ),
        ),
        (
            "000_webhook_payment_finished.json",
            "ps_3230",
            BankFact::Succeeded {
                token: Some(issued(SEED_TOKEN)),
            },
        ),
        (
            "001_webhook_payment_finished.json",
            "ps_3230",
            BankFact::Succeeded {
                token: Some(issued(SEED_TOKEN)),
            },
        ),
        (
            "002_webhook_action_required.json",
            "ps_3230",
            redirect(
                "https://smart-glocal.com?foo=bar",
                &[("PaReq", "sdfew^//asdhbv"), ("MD", "abc75daefnn")],
            ),
        ),
        (
            "002_webhook_payment_finished.json",
            "ps_3230",
            BankFact::Succeeded {
                token: Some(issued(SEED_TOKEN)),
            },
        ),
        (
            "003_webhook_payment_finished_success.json",
            "ps_713610",
            BankFact::Succeeded {
                token: Some(IssuedToken {
                    secret: RecurrentTokenSecret::parse(
                        "6a6a29c4193a8e1049231e1497a3c5f180e120b20db81b39f53ec478029b53cf",
                    )
                    .unwrap(),
                    created_at: map::parse_time("2024-08-08T10:10:27+03:00"),
                    finished_at: map::parse_time("2034-08-08T10:10:27+03:00"),
                    is_active: true,
                }),
            },
        ),
        (
            "003_webhook_payment_finished_qr_expired.json",
            "ps_713610",
            BankFact::Failed(Failure {
                code: ErrorCode::parse("qr_expired").unwrap(),
                message: "QR expired".into(),
            }),
        ),
    ]
}

#[test]
fn every_seed_webhook_maps_to_its_domain_fact() {
    let expected = expected_webhooks();
    let webhooks: Vec<String> = fixture_names()
        .into_iter()
        .filter(|n| n.contains("_webhook_"))
        .collect();
    assert_eq!(
        webhooks.len(),
        expected.len(),
        "a webhook fixture without an expectation"
    );
    for (name, session_id, fact) in expected {
        let webhook = Webhook::parse(read_fixture(name).as_bytes()).unwrap();
        let session = webhook
            .session()
            .unwrap_or_else(|| panic!("{name}: not a known webhook"));
        let snapshot = map::snapshot(session, Some(webhook.kind())).unwrap();
        assert_eq!(snapshot.session_id.as_str(), session_id, "{name}");
        assert_eq!(snapshot.fact.as_ref(), Some(&fact), "{name}");
    }
}

#[test]
fn seed_currencies_of_any_case_are_the_same_money() {
    let lower = map::money(&bank131::dto::Amount {
        amount: 10_000,
        currency: "rub".into(),
    })
    .unwrap();
    let upper = map::money(&bank131::dto::Amount {
        amount: 10_000,
        currency: "RUB".into(),
    })
    .unwrap();
    assert_eq!(lower, upper);
}

#[test]
fn v2_payment_list_is_read_like_acquiring_payments() {
    let v1: Value =
        serde_json::from_str(&read_fixture("000_webhook_payment_finished.json")).unwrap();
    let mut v2 = v1.clone();
    let payments = v2["session"]
        .as_object_mut()
        .unwrap()
        .remove("acquiring_payments")
        .unwrap();
    v2["session"]["payment_list"] = payments;
    let a: Session = serde_json::from_value(v1["session"].clone()).unwrap();
    let b: Session = serde_json::from_value(v2["session"].clone()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn unknown_webhook_types_keep_the_raw_json() {
    let body =
        br#"{"type":"payout_finished","session":{"id":"ps_1","status":"accepted"},"new_field":1}"#;
    let Webhook::Unknown { kind, raw } = Webhook::parse(body).unwrap() else {
        panic!("must be Unknown")
    };
    assert_eq!(kind, "payout_finished");
    assert_eq!(raw["new_field"], 1);
}

#[test]
fn unknown_fields_are_tolerated() {
    let mut v: Value =
        serde_json::from_str(&read_fixture("003_webhook_payment_finished_success.json")).unwrap();
    v["session"]["brand_new"] = Value::Bool(true);
    v["session"]["acquiring_payments"][0]["another"] = Value::from(42);
    assert!(matches!(
        Webhook::parse(v.to_string().as_bytes()).unwrap(),
        Webhook::PaymentFinished(_)
    ));
}

#[test]
fn token_info_is_read_under_any_of_its_names() {
    for key in ["info", "recurrent_token", "recurrent"] {
        let body = format!(
            r#"{{"status":"ok","{key}":{{"token":"t","is_active":false,"finished_at":"2000-01-01T00:00:00Z"}}}}"#
        );
        let response: Response = serde_json::from_str(&body).unwrap();
        let info = map::token_info(response.token_info().unwrap());
        assert!(!info.is_active, "{key}");
    }
}

fn start(instrument: Instrument, recurrent: bool, return_url: Option<&str>) -> StartPayment {
    StartPayment {
        project: Project::Main,
        session_id: BankSessionId::parse("ps_3230").unwrap(),
        payment_id: PaymentId::parse("pay_1").unwrap(),
        instrument,
        amount: Money::new(10_000, Currency::USD).unwrap(),
        customer: CustomerReference::parse("lucky").unwrap(),
        recurrent,
        return_url: return_url.map(str::to_owned),
        idempotency_key: "pay_1:start".into(),
    }
}

#[test]
fn our_cit_request_has_the_shape_of_seed_002() {
    let request = start(
        Instrument::Token {
            secret: RecurrentTokenSecret::parse("token_value").unwrap(),
            initiator: Initiator::Client,
        },
        false,
        Some("https://smart-glocal.com"),
    );
    let mut ours = serde_json::to_value(map::payment_request(&request)).unwrap();
    assert_eq!(
        ours["metadata"][bank131::PAYMENT_ID_KEY],
        "pay_1",
        "our payment id travels in metadata"
    );
    ours.as_object_mut().unwrap().remove("metadata");
    let seed: Value =
        serde_json::from_str(&read_fixture("002_request_start_payment_cit.json")).unwrap();
    let mut differences = Vec::new();
    diff("$", &seed, &ours, &mut differences);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn our_fps_binding_request_has_the_shape_of_seed_003() {
    let mut request = start(Instrument::FpsBinding(None), true, None);
    request.amount = Money::new(100, Currency::RUB).unwrap();
    let mut ours = serde_json::to_value(map::payment_request(&request)).unwrap();
    ours.as_object_mut().unwrap().remove("metadata");
    ours.as_object_mut().unwrap().remove("session_id");
    let seed: Value =
        serde_json::from_str(&read_fixture("003_request_init_payment_fps_binding.json")).unwrap();
    assert_eq!(ours, seed);
}

#[test]
fn create_session_carries_our_payment_id() {
    let request = map::create_session_request(&CreateSession {
        project: Project::Main,
        payment_id: PaymentId::parse("pay_9").unwrap(),
        amount: Money::new(100, Currency::RUB).unwrap(),
        customer: CustomerReference::parse("lucky").unwrap(),
        recurrent: true,
        idempotency_key: "k".into(),
    });
    let v = serde_json::to_value(request).unwrap();
    assert_eq!(v["metadata"]["recur_payment_id"], "pay_9");
    assert_eq!(v["payment_options"]["recurrent"], true);
}

#[test]
fn card_data_never_shows_in_debug_output() {
    let card = CardData::new("4242424242424242", "12", "30", "987", None).unwrap();
    let request = map::payment_request(&start(Instrument::Card(card.clone()), true, None));
    for shown in [format!("{card:?}"), format!("{request:?}")] {
        assert!(
            !shown.contains("424242424242") && !shown.contains("987"),
            "{shown}"
        );
        assert!(shown.contains("4242"));
    }
}

// ---- signatures -------------------------------------------------------------

fn key(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap()
}

#[test]
fn openssl_signatures_verify_with_our_verifier() {
    let message = std::fs::read(fixtures().join("keys/message.json")).unwrap();
    let signature = key("message.sig.b64");
    let verifier = Verifier::from_pems([key("partner_public.pem").as_str()]).unwrap();
    assert!(verifier.verify(&message, &signature));
}

#[test]
fn our_signatures_are_byte_identical_to_openssl_for_pkcs1_and_pkcs8_keys() {
    // PKCS#1 v1.5 is deterministic: equal bytes mean openssl dgst -verify accepts ours.
    let message = std::fs::read(fixtures().join("keys/message.json")).unwrap();
    let expected = key("message.sig.b64");
    for name in ["partner_pkcs8.pem", "partner_pkcs1.pem"] {
        let signer = Signer::from_pem(&key(name)).unwrap();
        assert_eq!(signer.sign(&message).unwrap(), expected.trim(), "{name}");
    }
}

#[test]
fn any_key_of_a_rotated_set_verifies_and_no_other_does() {
    let message = b"{\"type\":\"payment_finished\"}";
    let old = Signer::from_pem(&key("other_pkcs8.pem")).unwrap();
    let new = Signer::from_pem(&key("partner_pkcs8.pem")).unwrap();
    let both = format!("{}{}", key("other_public.pem"), key("partner_public.pem"));
    let rotated = Verifier::from_pems([both.as_str()]).unwrap();
    assert!(rotated.verify(message, &old.sign(message).unwrap()));
    assert!(rotated.verify(message, &new.sign(message).unwrap()));
    let only_new = Verifier::from_pems([key("partner_public.pem").as_str()]).unwrap();
    assert!(!only_new.verify(message, &old.sign(message).unwrap()));
}

#[test]
fn tampered_bodies_and_garbage_signatures_fail() {
    let signer = Signer::from_pem(&key("partner_pkcs8.pem")).unwrap();
    let verifier = Verifier::from_pems([key("partner_public.pem").as_str()]).unwrap();
    let signature = signer.sign(b"{\"amount\":100}").unwrap();
    assert!(!verifier.verify(b"{\"amount\":1000}", &signature));
    assert!(!verifier.verify(b"{\"amount\":100}", "not base64!"));
    assert!(!verifier.verify(b"{\"amount\":100}", ""));
}

#[test]
fn private_keys_never_print() {
    let pem = key("partner_pkcs8.pem");
    let signer = Signer::from_pem(&pem).unwrap();
    let shown = format!("{signer:?}");
    assert_eq!(shown, "Signer(***)");
}

#[test]
fn bad_key_files_are_refused_with_a_reason() {
    assert!(Signer::from_pem("no pem here").is_err());
    assert!(
        Signer::from_pem(&key("partner_public.pem")).is_err(),
        "a public key is not a private key"
    );
    assert!(
        Verifier::from_pems(["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
            .is_err()
    );
}

#[test]
fn generated_keys_round_trip_through_pem() {
    let signer = Signer::generate().unwrap();
    let reloaded = Signer::from_pem(&signer.private_pem().unwrap()).unwrap();
    let verifier = Verifier::from_pems([signer.public_pem().unwrap().as_str()]).unwrap();
    assert!(verifier.verify(b"x", &reloaded.sign(b"x").unwrap()));
}

#[test]
fn the_webhook_decoder_checks_the_signature_before_reading() {
    let bank = Signer::from_pem(&key("other_pkcs8.pem")).unwrap();
    let decoder =
        Bank131Webhooks::new(Verifier::from_pems([key("other_public.pem").as_str()]).unwrap());
    let body = read_fixture("003_webhook_payment_finished_qr_expired.json");
    let signature = bank.sign(body.as_bytes()).unwrap();
    decoder.verify(body.as_bytes(), &signature).unwrap();
    assert_eq!(
        decoder.verify(body.as_bytes(), ""),
        Err(WebhookError::BadSignature)
    );
    let decoded = decoder.decode(body.as_bytes()).unwrap();
    assert_eq!(decoded.kind, "payment_finished");
    assert!(
        matches!(decoded.fact, Some(BankFact::Failed(ref f)) if f.code.as_str() == "qr_expired")
    );
    assert!(matches!(
        decoder.decode(b"not json"),
        Err(WebhookError::Unparsable(_))
    ));
}

/// Every leaf path of a JSON value (`a.b.c`; arrays as `a[]`).
fn leaf_paths(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                leaf_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn every_request_field_matches_the_official_sdk_or_is_argued() {
    use bank131::requests::{
        AcquiringWidget, RecurrentRequest, RefundRequest, SessionIdRequest, TokenInfoRequest,
        TokenRef,
    };
    let table = std::fs::read_to_string(fixtures().join("sdk_field_map.tsv")).unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "five columns: {line}");
        let (method, ours, theirs, source, note) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        assert!(source.starts_with("src/"), "an SDK file: {line}");
        if ours != theirs {
            assert!(
                note.starts_with("argued:"),
                "a difference needs its argument: {line}"
            );
        }
        documented.insert((method.to_owned(), ours.to_owned()), theirs.to_owned());
    }
    let service = SubscriptionService::new("svc-1", "Gym").unwrap();
    let card = CardData::new("4242424242424242", "12", "2030", "123", Some("IVAN".into())).unwrap();
    let token = RecurrentTokenSecret::parse("tok_raw").unwrap();
    let create = map::create_session_request(&CreateSession {
        project: Project::Main,
        payment_id: PaymentId::parse("pay_1").unwrap(),
        amount: Money::new(100, Currency::RUB).unwrap(),
        customer: CustomerReference::parse("c").unwrap(),
        recurrent: true,
        idempotency_key: "k".into(),
    });
    let mut sent: Vec<(&str, Value)> =
        vec![("session/create", serde_json::to_value(create).unwrap())];
    for instrument in [
        Instrument::Card(card),
        Instrument::Token {
            secret: token.clone(),
            initiator: Initiator::Client,
        },
        Instrument::Fps(Some(service.clone())),
        Instrument::FpsBinding(Some(service)),
    ] {
        let request = map::payment_request(&start(instrument, true, Some("https://shop.example")));
        sent.push((
            "session/start/payment",
            serde_json::to_value(request).unwrap(),
        ));
    }
    let session = || "ps_1".to_owned();
    sent.push((
        "session/confirm",
        serde_json::to_value(SessionIdRequest {
            session_id: session(),
        })
        .unwrap(),
    ));
    sent.push((
        "session/refund",
        serde_json::to_value(RefundRequest {
            session_id: session(),
            amount_details: Some(map::amount(Money::new(100, Currency::RUB).unwrap())),
        })
        .unwrap(),
    ));
    sent.push((
        "token",
        serde_json::to_value(WidgetTokenRequest {
            acquiring_widget: AcquiringWidget {
                session_id: session(),
                show_recurrent_checkbox: Some(true),
            },
        })
        .unwrap(),
    ));
    sent.push((
        "token/info",
        serde_json::to_value(TokenInfoRequest {
            kind: "recurrent_token".into(),
            recurrent_token: TokenRef { token: "t".into() },
        })
        .unwrap(),
    ));
    sent.push((
        "recurrent/disable",
        serde_json::to_value(RecurrentRequest {
            recurrent: TokenRef { token: "t".into() },
        })
        .unwrap(),
    ));
    let mut seen = std::collections::BTreeSet::new();
    for (method, body) in &sent {
        let mut paths = std::collections::BTreeSet::new();
        leaf_paths(body, "", &mut paths);
        for path in paths {
            assert!(
                documented.contains_key(&((*method).to_owned(), path.clone())),
                "{method} sends {path}, which the SDK comparison table does not list"
            );
            seen.insert(((*method).to_owned(), path));
        }
    }
    for key in documented.keys() {
        assert!(
            seen.contains(key),
            "the table lists {key:?}, which no request sends"
        );
    }
    let card_out = &sent[1].1["payment_details"]["card"]["bank_card"];
    assert_eq!(card_out["cardholder_name"], "IVAN");
    assert_eq!(
        card_out["expiration_year"], "30",
        "two digits, as the bank's card model"
    );
}

#[test]
fn seed_003_names_the_parent_session_of_a_child_sessions_failure() {
    let webhook =
        Webhook::parse(read_fixture("003_webhook_payment_finished_qr_expired.json").as_bytes())
            .unwrap();
    let session = webhook.session().unwrap();
    assert_eq!(
        map::parent_session_of(session).map(|s| s.as_str().to_owned()),
        Some("ps_1667788995".to_owned())
    );
}

#[test]
fn the_banks_payment_id_card_and_fee_are_read_from_the_seeds() {
    let read = |name: &str| {
        let webhook = Webhook::parse(read_fixture(name).as_bytes()).unwrap();
        map::details_of(webhook.session().unwrap())
    };
    let fps = read("003_webhook_payment_finished_qr_expired.json");
    assert_eq!(
        fps.fee,
        Some(Money::new(1607, Currency::RUB).unwrap()),
        "amounts.fee.merchant_fee"
    );
    let card = read("001_webhook_payment_finished.json");
    assert_eq!(
        card.card,
        Some(CardSummary {
            brand: "visa".into(),
            last4: "4242".into()
        })
    );
    assert!(card.payment_id.is_some_and(|id| id.starts_with("pm_")));
}

#[test]
fn an_absent_field_is_left_out_when_written_never_null() {
    let thin = r#"{"id":"ps_1","status":"in_progress","acquiring_payments":[{"id":"pm_1","status":"pending"}]}"#;
    let session: Session = serde_json::from_str(thin).unwrap();
    let written = serde_json::to_string(&session).unwrap();
    assert!(!written.contains("null"), "{written}");
    assert!(written.contains(r#""id":"pm_1""#), "{written}");
}
