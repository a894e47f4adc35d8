//! The sandbox bank's state and rules: sessions, payments, tokens, the ledger.
//! Every method takes the state and returns the answer plus the webhooks to send.
//! No card number or CVV is kept: only the last four digits and the behaviour.

mod records;
mod state;
mod widget;

pub use records::{
    Awaiting, Faults, LedgerEntry, Outcome, PaymentRecord, Refusal, SessionRecord, TokenRecord,
    WIDGET_TOKEN_TTL, Widget,
};
pub use state::Bank;

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;

    fn session_with_amount(bank: &mut Bank) -> String {
        let body = json!({ "amount_details": { "amount": 100, "currency": "rub" }, "customer": { "reference": "c" } });
        let (response, _) = bank.create_session(&body, "http://bank").unwrap();
        response.session.unwrap().id
    }

    #[test]
    fn a_widget_token_works_for_24_hours_only() {
        let mut bank = Bank::default();
        let session = session_with_amount(&mut bank);
        let (response, _) = bank.widget_token(&session, true).unwrap();
        let token = response.public_token.unwrap();
        bank.widgets.get_mut(&token).unwrap().expires_at =
            OffsetDateTime::now_utc().unix_timestamp() - 1;
        let refused = bank
            .widget_pay(&token, "4242424242424242", true, None)
            .unwrap_err();
        assert!(refused.description.contains("expired"));
    }

    #[test]
    fn card_numbers_are_not_kept_in_the_state() {
        let mut bank = Bank::default();
        let session = session_with_amount(&mut bank);
        let (response, _) = bank.widget_token(&session, false).unwrap();
        bank.widget_pay(
            &response.public_token.unwrap(),
            "4000000000003220",
            false,
            None,
        )
        .unwrap();
        let state = serde_json::to_string(&bank).unwrap();
        assert!(!state.contains("4000000000003220"));
        assert!(state.contains("\"last4\":\"3220\""));
    }
}
