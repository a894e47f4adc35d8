//! The token lifecycle: read, refresh from the bank, disable.

use domain::{Applied, CustomerReference, RecurrentToken, TokenId, TokenStatus};
use ports::{ChangeSet, NewEvent, OutboxCommand, StoreError, Subject, Versioned, Write};
use time::OffsetDateTime;

use crate::{Service, ServiceError};

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

    /// A customer's tokens.
    pub async fn list_tokens(
        &self,
        customer: &CustomerReference,
    ) -> Result<Vec<RecurrentToken>, ServiceError> {
        Ok(self.deps.tokens.list_by_customer(customer).await?)
    }

    /// Asks to disable a token: it is never charged from now on, and the
    /// outbox retries `recurrent/disable` until the bank confirms.
    pub async fn disable_token(&self, id: &TokenId) -> Result<RecurrentToken, ServiceError> {
        self.change_token(id, |token, _| token.request_disable())
            .await
    }

    /// The bank confirmed `recurrent/disable`.
    pub(crate) async fn token_disable_confirmed(
        &self,
        id: &TokenId,
    ) -> Result<RecurrentToken, ServiceError> {
        self.change_token(id, |token, _| {
            token
                .disable_confirmed()
                .unwrap_or(Applied::Ignored(domain::Ignored::Stale))
        })
        .await
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
        for _ in 0..crate::payments::CONFLICT_RETRIES {
            let read = self.read_token(id).await?;
            let mut token = read.value.clone();
            let now = self.now();
            let applied = change(&mut token, now);
            if token == read.value {
                return Ok(token);
            }
            let mut changes = ChangeSet::default();
            if let Applied::Changed { to, .. } = applied {
                match to {
                    TokenStatus::Disabling => {
                        changes.outbox.push(OutboxCommand::DisableToken(id.clone()));
                    }
                    TokenStatus::Disabled => changes.events.push(NewEvent {
                        kind: "token.disabled",
                        subject: Subject::Token(id.clone()),
                        data: self.deps.presenter.token(&token),
                    }),
                    TokenStatus::Active => {}
                }
            }
            changes.tokens.push(Write {
                value: token.clone(),
                expected_version: Some(read.version),
            });
            match self.deps.uow.commit(changes, now).await {
                Ok(()) => return Ok(token),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Store(StoreError::Conflict(format!(
            "token {id} kept changing"
        ))))
    }
}
