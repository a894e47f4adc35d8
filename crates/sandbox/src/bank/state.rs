//! The bank's state and its session rules: create, start, confirm, cancel, capture,
//! 3-D Secure, QR, status and refunds.
use std::collections::{BTreeMap, BTreeSet};

use bank131::dto::{
    AcquiringPayment, Amount, Amounts, ApiError, CardDetails, CustomerInteraction, Inform,
    PaymentDetails, Qr, RecurrentTokenInfo, Redirect, Refund, Session, Webhook,
};
use bank131::requests::PaymentRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::records::{
    Awaiting, LedgerEntry, Outcome, PaymentRecord, Refusal, SessionRecord, TokenRecord, Widget,
    now_text, random_hex, refuse, with_session,
};
use crate::cards::{self, Behavior};

/// The whole bank.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Bank {
    next_id: u64,
    /// Sessions by id, each boxed: a B-tree node holds eleven values
    /// whether it is full or not, and a session record is kilobytes (boxed,
    /// the benchmark's billing day of 10,000 sessions peaked at 89 MiB
    /// instead of 104).
    pub sessions: BTreeMap<String, Box<SessionRecord>>,
    /// Tokens by raw token.
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Widget public tokens.
    pub widgets: BTreeMap<String, Widget>,
    /// Idempotency keys seen.
    pub idempotency: BTreeSet<String>,
    /// Money that moved.
    pub ledger: Vec<LedgerEntry>,
    /// Idempotency keys used a second time, in order (not persisted): each
    /// is a request the client sent twice.
    #[serde(skip)]
    pub repeated_keys: Vec<String>,
    /// Codes the next successful payments are declined with (a fault; not persisted).
    #[serde(skip)]
    pub decline_next: std::collections::VecDeque<String>,
}

impl Bank {
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", 1000 + self.next_id)
    }

    pub(crate) fn session_mut(&mut self, id: &str) -> Result<&mut SessionRecord, Refusal> {
        self.sessions
            .get_mut(id)
            .map(|session| &mut **session)
            .ok_or_else(|| refuse("invalid_request", format!("unknown session {id}")))
    }

    /// Records an idempotency key; a second use is refused, as the bank does.
    pub fn claim_key(&mut self, key: Option<&str>) -> Result<(), Refusal> {
        match key {
            Some(key) if !self.idempotency.insert(key.to_owned()) => {
                self.repeated_keys.push(key.to_owned());
                Err(refuse(
                    "idempotency_key_already_exists",
                    "a request with this idempotency key was already made",
                ))
            }
            _ => Ok(()),
        }
    }

    /// `session/create`.
    pub fn create_session(&mut self, body: &Value, base_url: &str) -> Outcome {
        let recurrent = body
            .pointer("/payment_options/recurrent")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let id = self.id("ps_");
        let now = now_text();
        let view = Session {
            id: id.clone(),
            status: "created".into(),
            created_at: Some(now.clone()),
            updated_at: Some(now),
            finished_at: None,
            acquiring_payments: Vec::new(),
            next_action: None,
            actions: None,
            metadata: body.get("metadata").cloned(),
            error: None,
        };
        let record = SessionRecord {
            view,
            payment: None,
            awaiting: Awaiting::Nothing,
            recurrent,
            base_url: base_url.to_owned(),
            amount: body
                .get("amount_details")
                .and_then(|a| serde_json::from_value(a.clone()).ok()),
            customer: body
                .get("customer")
                .and_then(|c| serde_json::from_value(c.clone()).ok()),
            project: String::new(),
        };
        let wire = record.wire();
        self.sessions.insert(id, Box::new(record));
        Ok((with_session(wire), Vec::new()))
    }

    /// `session/start/payment` (two-step: waits for confirm) and
    /// `session/init/payment` (one step).
    pub fn start_payment(
        &mut self,
        request: &PaymentRequest,
        two_step: bool,
        base_url: &str,
    ) -> Outcome {
        let session_id = match (&request.session_id, two_step) {
            (Some(id), _) => id.clone(),
            (None, false) => {
                let (response, _) = self.create_session(&json!({}), base_url)?;
                response.session.map(|s| s.id).unwrap_or_default()
            }
            (None, true) => return Err(refuse("invalid_request", "session_id is required")),
        };
        if request.amount_details.amount <= 0 {
            return Err(refuse("invalid_request", "amount must be positive"));
        }
        let (behavior, details, charged_token, client) = self.instrument(request)?;
        let pm_id = self.id("pm_");
        let session = self.session_mut(&session_id)?;
        if session.payment.is_some() || session.view.status != "created" {
            return Err(refuse(
                "session_wrong_state",
                "the session already has a payment",
            ));
        }
        let issue_token = session.recurrent
            || request
                .payment_options
                .as_ref()
                .and_then(|o| o.recurrent)
                .unwrap_or(false)
            || client;
        let view = AcquiringPayment {
            id: pm_id,
            status: "pending".into(),
            created_at: Some(now_text()),
            finished_at: None,
            customer: Some(request.customer.clone()),
            payment_details: Some(details),
            amount_details: Some(request.amount_details.clone()),
            amounts: Some(amounts(&request.amount_details)),
            payment_options: request.payment_options.clone(),
            recurrent: None,
            customer_interaction: None,
            refunds: Some(Vec::new()),
            metadata: request
                .metadata
                .clone()
                .or_else(|| session.view.metadata.clone()),
            subscription: None,
            error: None,
        };
        session.payment = Some(PaymentRecord {
            view,
            behavior,
            charged_token,
            issue_token,
            client_initiated: client,
        });
        session.view.status = "in_progress".into();
        session.view.updated_at = Some(now_text());
        if two_step {
            session.awaiting = Awaiting::Confirm;
            session.view.next_action = Some("confirm".into());
            let wire = session.wire();
            return Ok((
                with_session(wire.clone()),
                vec![Webhook::ReadyToConfirm(wire)],
            ));
        }
        self.proceed(&session_id)
    }

    pub(crate) fn instrument(
        &self,
        request: &PaymentRequest,
    ) -> Result<(Behavior, PaymentDetails, Option<String>, bool), Refusal> {
        match &request.payment_details {
            PaymentDetails::Card { card } => {
                let bank_card = card
                    .bank_card
                    .as_ref()
                    .ok_or_else(|| refuse("invalid_request", "card.bank_card is required"))?;
                let behavior =
                    cards::behavior(&bank_card.number).map_err(|e| refuse("invalid_request", e))?;
                let n = &bank_card.number;
                let masked = CardDetails {
                    kind: None,
                    bank_card: None,
                    brand: Some(cards::brand(n).into()),
                    last4: n.get(n.len().saturating_sub(4)..).map(str::to_owned),
                };
                Ok((behavior, PaymentDetails::Card { card: masked }, None, false))
            }
            PaymentDetails::Recurrent { recurrent } => {
                let client = recurrent.initiator.as_deref() == Some("client");
                let token = self.tokens.get(&recurrent.token);
                let behavior = match token {
                    Some(t) if t.info.is_active => {
                        if client {
                            Behavior::ThreeDs
                        } else {
                            Behavior::Approve
                        }
                    }
                    _ => Behavior::Decline("binding_is_deactivated".into()),
                };
                if let Some(t) = token
                    && t.customer != request.customer.reference
                {
                    return Err(refuse(
                        "invalid_request",
                        "the token belongs to another customer",
                    ));
                }
                Ok((
                    behavior,
                    request.payment_details.clone(),
                    Some(recurrent.token.clone()),
                    client,
                ))
            }
            PaymentDetails::FasterPaymentSystem { .. }
            | PaymentDetails::FasterPaymentSystemBinding { .. } => {
                let rub = request.amount_details.currency.eq_ignore_ascii_case("rub");
                if !rub {
                    return Err(refuse("invalid_request", "SBP payments are in RUB only"));
                }
                Ok((Behavior::Qr, request.payment_details.clone(), None, false))
            }
            PaymentDetails::Unknown => Err(refuse(
                "invalid_request",
                "unsupported payment_details.type",
            )),
        }
    }

    /// Moves a started (and confirmed) payment on according to its behaviour.
    pub(crate) fn proceed(&mut self, session_id: &str) -> Outcome {
        let session = self.session_mut(session_id)?;
        session.view.next_action = None;
        let base = session.base_url.clone();
        let Some(payment) = session.payment.as_mut() else {
            return Err(refuse("session_wrong_state", "no payment in the session"));
        };
        match payment.behavior.clone() {
            Behavior::ThreeDs | Behavior::ThreeDsFails => {
                let mut params = Map::new();
                params.insert(
                    "PaReq".into(),
                    Value::String(format!("sandbox-pareq-{session_id}")),
                );
                params.insert("MD".into(), Value::String(session_id.to_owned()));
                let url = format!("{base}/3ds/{session_id}");
                payment.view.customer_interaction = Some(CustomerInteraction {
                    kind: Some("redirect".into()),
                    redirect: Some(Redirect {
                        url: url.clone(),
                        base_url: Some(url),
                        method: "POST".into(),
                        qs: None,
                        params: Some(params),
                    }),
                    inform: None,
                });
                session.awaiting = Awaiting::ThreeDs;
                let wire = session.wire();
                Ok((
                    with_session(wire.clone()),
                    vec![Webhook::ActionRequired(wire)],
                ))
            }
            Behavior::Qr => {
                payment.view.customer_interaction = Some(CustomerInteraction {
                    kind: Some("inform".into()),
                    redirect: None,
                    inform: Some(Inform {
                        qr: Some(Qr {
                            content: format!(
                                "https://qr.nspk.ru/SANDBOX{session_id}?type=02&bank=sandbox"
                            ),
                        }),
                    }),
                });
                session.awaiting = Awaiting::Qr;
                let wire = session.wire();
                Ok((
                    with_session(wire.clone()),
                    vec![Webhook::ActionRequired(wire)],
                ))
            }
            Behavior::Hold => {
                payment.view.status = "in_progress".into();
                session.view.next_action = Some("capture".into());
                session.awaiting = Awaiting::Capture;
                let wire = session.wire();
                Ok((
                    with_session(wire.clone()),
                    vec![Webhook::ReadyToCapture(wire)],
                ))
            }
            Behavior::Decline(code) => self.finish(session_id, Err(code)),
            Behavior::Approve | Behavior::TokenDies | Behavior::DropResponse => {
                match self.decline_next.pop_front() {
                    Some(code) => self.finish(session_id, Err(code)),
                    None => self.finish(session_id, Ok(())),
                }
            }
        }
    }

    /// Ends a payment: succeeded (money moves, maybe a token) or failed with a code.
    pub(crate) fn finish(&mut self, session_id: &str, result: Result<(), String>) -> Outcome {
        let now = now_text();
        let mut new_token = None;
        let mut ledger = None;
        // A charge with a saved token reports that token back in `recurrent`
        // (the bank may echo the charged token on a charge's result).
        let echoed = self
            .sessions
            .get(session_id)
            .and_then(|s| s.payment.as_ref()?.charged_token.clone())
            .and_then(|t| self.tokens.get(&t).map(|r| r.info.clone()));
        let session = self.session_mut(session_id)?;
        session.awaiting = Awaiting::Nothing;
        session.view.next_action = None;
        session.view.updated_at = Some(now.clone());
        session.view.finished_at = Some(now.clone());
        let Some(payment) = session.payment.as_mut() else {
            return Err(refuse("session_wrong_state", "no payment in the session"));
        };
        payment.view.finished_at = Some(now.clone());
        payment.view.customer_interaction = None;
        match result {
            Ok(()) => {
                session.view.status = "accepted".into();
                payment.view.status = "succeeded".into();
                let binding = matches!(
                    payment.view.payment_details,
                    Some(PaymentDetails::FasterPaymentSystemBinding { .. })
                );
                let amount = payment.view.amount_details.clone().unwrap_or(Amount {
                    amount: 0,
                    currency: "rub".into(),
                });
                ledger = Some(LedgerEntry {
                    project: session.project.clone(),
                    kind: if binding { "binding" } else { "charge" }.into(),
                    session_id: session_id.to_owned(),
                    partner_payment_id: payment
                        .view
                        .metadata
                        .as_ref()
                        .and_then(|m| m.get(bank131::PAYMENT_ID_KEY))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    token: payment.charged_token.clone(),
                    amount: if binding { 0 } else { amount.amount },
                    currency: amount.currency.to_ascii_uppercase(),
                    at: now.clone(),
                });
                let card = match &payment.view.payment_details {
                    Some(PaymentDetails::Card { card }) => Some(card.clone()),
                    _ => None,
                };
                if payment.issue_token {
                    let info = RecurrentTokenInfo {
                        token: random_hex(32),
                        created_at: Some(now.clone()),
                        finished_at: Some(
                            (OffsetDateTime::now_utc() + time::Duration::days(3650))
                                .format(&Rfc3339)
                                .unwrap_or_default(),
                        ),
                        is_active: true,
                        kind: Some("recurrent_token".into()),
                        brand: card.as_ref().and_then(|c| c.brand.clone()),
                        last4: card.as_ref().and_then(|c| c.last4.clone()),
                    };
                    payment.view.recurrent = Some(info.clone());
                    let rail = if matches!(payment.behavior, Behavior::Qr) {
                        "fps"
                    } else {
                        "card"
                    };
                    let customer = payment
                        .view
                        .customer
                        .as_ref()
                        .map(|c| c.reference.clone())
                        .unwrap_or_default();
                    new_token = Some(TokenRecord {
                        info,
                        customer,
                        dies_after_charge: payment.behavior == Behavior::TokenDies,
                        rail: rail.into(),
                    });
                } else {
                    payment.view.recurrent = echoed;
                }
            }
            Err(code) => {
                session.view.status = "cancelled".into();
                payment.view.status = "failed".into();
                payment.view.error = Some(ApiError {
                    code: code.clone(),
                    description: Some(code.replace('_', " ")),
                });
                session.view.error = Some(ApiError {
                    code: "session_cancelled".into(),
                    description: Some("Session cancelled".into()),
                });
            }
        }
        let charged = payment.charged_token.clone();
        let wire = session.wire();
        if let Some(entry) = ledger {
            self.ledger.push(entry);
            // A token that dies after its first charge.
            if let Some(token) = charged.and_then(|t| self.tokens.get_mut(&t))
                && token.dies_after_charge
            {
                token.info.is_active = false;
            }
        }
        if let Some(token) = new_token {
            self.tokens.insert(token.info.token.clone(), token);
        }
        Ok((
            with_session(wire.clone()),
            vec![Webhook::PaymentFinished(wire)],
        ))
    }

    pub(crate) fn expect(&mut self, session_id: &str, awaiting: Awaiting) -> Result<(), Refusal> {
        let session = self.session_mut(session_id)?;
        if session.awaiting == awaiting {
            Ok(())
        } else {
            Err(refuse(
                "session_wrong_state",
                format!("session {session_id} is not waiting for {awaiting:?}"),
            ))
        }
    }

    /// `session/confirm`.
    pub fn confirm(&mut self, session_id: &str) -> Outcome {
        self.expect(session_id, Awaiting::Confirm)?;
        if let Some(actions) = self
            .session_mut(session_id)?
            .view
            .actions
            .as_mut()
            .and_then(Value::as_object_mut)
        {
            actions.insert("confirm".into(), Value::String(now_text()));
        } else {
            self.session_mut(session_id)?.view.actions = Some(json!({ "confirm": now_text() }));
        }
        self.proceed(session_id)
    }

    /// `session/cancel`.
    pub fn cancel(&mut self, session_id: &str) -> Outcome {
        let session = self.session_mut(session_id)?;
        if session.payment.is_none() && session.view.status == "created" {
            // Nothing was paid (a widget nobody used): the session just closes.
            session.view.status = "cancelled".into();
            session.view.updated_at = Some(now_text());
            let wire = session.wire();
            return Ok((with_session(wire), Vec::new()));
        }
        let awaiting = session.awaiting;
        if !matches!(awaiting, Awaiting::Confirm | Awaiting::Capture) {
            return Err(refuse(
                "session_wrong_state",
                "only a session waiting for confirm or capture can be cancelled",
            ));
        }
        self.finish(session_id, Err("session_cancelled_by_partner".into()))
    }

    /// `session/capture`.
    pub fn capture(&mut self, session_id: &str) -> Outcome {
        self.expect(session_id, Awaiting::Capture)?;
        self.finish(session_id, Ok(()))
    }

    /// The customer on the 3-D Secure page.
    pub fn three_ds(&mut self, session_id: &str, approve: bool) -> Outcome {
        self.expect(session_id, Awaiting::ThreeDs)?;
        let fails = self
            .sessions
            .get(session_id)
            .and_then(|s| s.payment.as_ref())
            .is_some_and(|p| p.behavior == Behavior::ThreeDsFails);
        let result = if approve && !fails {
            Ok(())
        } else {
            Err("3DS_error".into())
        };
        self.finish(session_id, result)
    }

    /// The customer pays the QR code, or lets it expire.
    pub fn qr(&mut self, session_id: &str, pay: bool) -> Outcome {
        self.expect(session_id, Awaiting::Qr)?;
        self.finish(
            session_id,
            if pay {
                Ok(())
            } else {
                Err("qr_expired".into())
            },
        )
    }

    /// `session/status`.
    pub fn status(&mut self, session_id: &str) -> Outcome {
        let wire = self.session_mut(session_id)?.wire();
        Ok((with_session(wire), Vec::new()))
    }

    /// `session/refund`.
    pub fn refund(&mut self, session_id: &str, amount: Option<Amount>) -> Outcome {
        let now = now_text();
        let session = self.session_mut(session_id)?;
        let Some(payment) = session
            .payment
            .as_mut()
            .filter(|p| p.view.status == "succeeded")
        else {
            return Err(refuse(
                "session_wrong_state",
                "only a succeeded payment can be refunded",
            ));
        };
        let paid = payment.view.amount_details.clone().unwrap_or(Amount {
            amount: 0,
            currency: "rub".into(),
        });
        let refunds = payment.view.refunds.get_or_insert_with(Vec::new);
        let refunded: i64 = refunds
            .iter()
            .filter_map(|r| r.amount_details.as_ref())
            .map(|a| a.amount)
            .sum();
        let amount = amount.unwrap_or(Amount {
            amount: paid.amount - refunded,
            currency: paid.currency.clone(),
        });
        if amount.amount <= 0 || refunded + amount.amount > paid.amount {
            return Err(refuse("invalid_request", "refund exceeds the amount left"));
        }
        refunds.push(Refund {
            id: Some(format!("rf_{}", refunds.len() + 1)),
            // The bank's refund statuses: accepted, in_progress, declined, error.
            status: Some("accepted".into()),
            created_at: Some(now.clone()),
            finished_at: Some(now.clone()),
            amount_details: Some(amount.clone()),
        });
        let token = payment.charged_token.clone();
        let wire = session.wire();
        let project = self
            .sessions
            .get(session_id)
            .map(|s| s.project.clone())
            .unwrap_or_default();
        self.ledger.push(LedgerEntry {
            project,
            kind: "refund".into(),
            session_id: session_id.to_owned(),
            partner_payment_id: None,
            token,
            amount: amount.amount,
            currency: amount.currency.to_ascii_uppercase(),
            at: now,
        });
        Ok((
            with_session(wire.clone()),
            vec![Webhook::PaymentRefunded(wire)],
        ))
    }
}

/// The bank's fee (0.7 %, as in seed 003) and what reaches the merchant.
fn amounts(amount: &Amount) -> Amounts {
    let fee = (amount.amount * 7).div_euclid(1000);
    let money = |value: i64| Amount {
        amount: value,
        currency: amount.currency.clone(),
    };
    Amounts {
        gross: Some(money(amount.amount)),
        net: Some(money(amount.amount - fee)),
        fee: Some(json!({ "merchant_fee": money(fee) })),
    }
}
