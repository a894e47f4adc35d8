//! The token lifecycle: read, refresh from the bank, disable.

use domain::{Applied, CustomerReference, Ignored, RecurrentToken, TokenId, TokenStatus};
use ports::{ChangeSet, OutboxCommand, Page, Versioned, Write};
use time::OffsetDateTime;

use crate::retry::Attempt;
use crate::{Listed, Service, ServiceError};

impl Service {
    /// A token by id; with `refresh`, asks the bank (`token/info`) first.
    pub async fn token(&self, id: &TokenId, refresh: bool) -> Result<RecurrentToken, ServiceError> {
        let read = self.read_token(id).await?;
        if !refresh {
            return Ok(read.value);
        }
        let info = self
            .deps
            .gateway
            .token_info(read.value.secret.clone())
            .await?;
        self.change_token(id, |token, now| {
            token.observe_info(info.is_active, info.finished_at, now)
        })
        .await
    }

    /// A page of a customer's tokens, newest first. The cursor must be one
    /// of the customer's tokens.
    pub async fn list_tokens(
        &self,
        customer: &CustomerReference,
        page: Page<TokenId>,
    ) -> Result<Listed<RecurrentToken>, ServiceError> {
        let theirs = match &page.after {
            Some(after) => self
                .deps
                .tokens
                .get(after)
                .await?
                .is_some_and(|t| &t.value.customer == customer),
            None => true,
        };
        Listed::read(page, theirs, |page| {
            self.deps.tokens.list_by_customer(customer, page)
        })
        .await
    }

    /// Asks to disable a token: it is never charged from now on, and the
    /// outbox retries `recurrent/disable` until the bank confirms.
    pub async fn disable_token(&self, id: &TokenId) -> Result<RecurrentToken, ServiceError> {
        self.change_token(id, |token, _| token.request_disable())
            .await
    }

    /// The outbox's `recurrent/disable`: sent while the token is disabling,
    /// and the token is disabled once the bank confirms.
    pub(crate) async fn disable_token_at_bank(&self, id: &TokenId) -> Result<(), ServiceError> {
        let token = self.read_token(id).await?.value;
        if token.status() != TokenStatus::Disabling {
            return Ok(());
        }
        let info = self
            .deps
            .gateway
            .disable_token(token.secret.clone(), format!("{id}:disable"))
            .await?;
        if info.is_active {
            return Err(ServiceError::State(
                "the bank still reports the token active".into(),
            ));
        }
        self.change_token(id, |token, now| {
            let applied = token
                .disable_confirmed()
                .unwrap_or(Applied::Ignored(Ignored::Stale));
            // Its end as the bank reports it (the disable time when the bank
            // answers with its year-2000 placeholder).
            token.observe_info(false, info.finished_at, now);
            applied
        })
        .await
        .map(|_| ())
    }

    async fn read_token(&self, id: &TokenId) -> Result<Versioned<RecurrentToken>, ServiceError> {
        self.deps
            .tokens
            .get(id)
            .await?
            .ok_or(ServiceError::NotFound("token"))
    }

    /// Reads, changes and writes a token, with its events and commands.
    async fn change_token<F>(&self, id: &TokenId, change: F) -> Result<RecurrentToken, ServiceError>
    where
        F: Fn(&mut RecurrentToken, OffsetDateTime) -> Applied<TokenStatus> + Send + Sync,
    {
        let change = &change;
        self.retry_on_conflict(&format!("token {id}"), |_, now| {
            Box::pin(async move {
                let read = self.read_token(id).await?;
                let mut token = read.value.clone();
                let applied = change(&mut token, now);
                if token == read.value {
                    return Ok(Attempt::Unchanged(token));
                }
                let mut changes = ChangeSet::default();
                match applied {
                    Applied::Changed {
                        to: TokenStatus::Disabling,
                        ..
                    } => changes.outbox.push(OutboxCommand::DisableToken(id.clone())),
                    Applied::Changed {
                        to: TokenStatus::Disabled,
                        ..
                    } => changes
                        .events
                        .push(self.token_event("token.disabled", &token)),
                    _ => {}
                }
                changes.tokens.push(Write {
                    value: token.clone(),
                    expected_version: Some(read.version),
                });
                Ok(Attempt::Commit(changes, token))
            })
        })
        .await
    }
}
