//! The widget (public tokens, the card form's payment) and recurrent tokens.

use bank131::dto::{CardDetails, PaymentDetails, PaymentOptions, RecurrentTokenInfo, Response};
use bank131::requests::PaymentRequest;
use time::OffsetDateTime;

use super::records::{Outcome, Refusal, WIDGET_TOKEN_TTL, Widget, random_hex, refuse};
use super::state::Bank;

impl Bank {
    /// `token`: a widget public token for a session.
    pub fn widget_token(&mut self, session_id: &str, show_recurrent_checkbox: bool) -> Outcome {
        self.session_mut(session_id)?;
        let public = format!("pt_{}", random_hex(16));
        let expires_at = (OffsetDateTime::now_utc() + WIDGET_TOKEN_TTL).unix_timestamp();
        self.widgets.insert(
            public.clone(),
            Widget {
                session_id: session_id.to_owned(),
                show_recurrent_checkbox,
                expires_at,
            },
        );
        Ok((
            Response {
                public_token: Some(public),
                ..Response::ok()
            },
            Vec::new(),
        ))
    }

    /// The customer pays in the widget with a card. As at the bank, the
    /// session then waits for the partner (`ready_to_confirm`); after
    /// `session/confirm` a 3-D Secure card is sent to the 3-D Secure page.
    /// `save` (the customer ticked the box) counts only where the widget
    /// showed it.
    pub fn widget_pay(
        &mut self,
        public_token: &str,
        number: &str,
        save: bool,
        customer: Option<&str>,
    ) -> Outcome {
        let widget = self
            .widgets
            .get(public_token)
            .ok_or_else(|| refuse("invalid_request", "unknown widget token"))?;
        if widget.expires_at <= OffsetDateTime::now_utc().unix_timestamp() {
            return Err(refuse(
                "invalid_request",
                "the widget token expired (they work for 24 hours)",
            ));
        }
        let session_id = widget.session_id.clone();
        let save = save && widget.show_recurrent_checkbox;
        let session = self.session_mut(&session_id)?;
        let base = session.base_url.clone();
        let amount = session
            .amount
            .clone()
            .ok_or_else(|| refuse("invalid_request", "the session has no amount"))?;
        let customer = session
            .customer
            .clone()
            .or_else(|| {
                customer.map(|c| bank131::dto::Customer {
                    reference: c.to_owned(),
                    contacts: None,
                })
            })
            .ok_or_else(|| refuse("invalid_request", "the session has no customer"))?;
        let request = PaymentRequest {
            session_id: Some(session_id),
            payment_details: PaymentDetails::Card {
                card: CardDetails {
                    kind: Some("bank_card".into()),
                    bank_card: Some(bank131::dto::BankCard {
                        number: number.to_owned(),
                        expiration_month: "12".into(),
                        expiration_year: "30".into(),
                        security_code: None,
                        cardholder_name: None,
                    }),
                    brand: None,
                    last4: None,
                },
            },
            amount_details: amount,
            customer,
            payment_options: Some(PaymentOptions {
                recurrent: Some(save),
                return_url: None,
            }),
            metadata: None,
        };
        self.start_payment(&request, true, &base)
    }

    /// `token/info` and `recurrent/status`.
    pub fn token_info(&self, token: &str) -> Result<RecurrentTokenInfo, Refusal> {
        self.tokens
            .get(token)
            .map(|t| t.info.clone())
            .ok_or_else(|| refuse("invalid_request", "unknown recurrent token"))
    }

    /// `recurrent/disable` (also the control API's "the bank disabled it").
    pub fn disable_token(&mut self, token: &str) -> Result<RecurrentTokenInfo, Refusal> {
        let record = self
            .tokens
            .get_mut(token)
            .ok_or_else(|| refuse("invalid_request", "unknown recurrent token"))?;
        record.info.is_active = false;
        record.info.finished_at = Some("2000-01-01T00:00:00+03:00".into());
        Ok(record.info.clone())
    }
}
