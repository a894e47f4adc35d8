//! Payments: start, confirm, cancel, refund and read.

use domain::CardData;
use domain::{
    BankCode, BankFact, Confirmation, CustomerReference, Failure, Money, NewPayment, Payment,
    PaymentError, PaymentId, PaymentMethod, RecurrentToken, TokenId,
};
use ports::{ChangeSet, CreateSession, GatewayError, Instrument, Project, StartPayment, Write};
use tracing::{info, warn};

use crate::apply::{PaymentChange, failure_of};
use crate::{Service, ServiceError};

/// `POST /v1/payments`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPaymentCommand {
    /// Who pays.
    pub customer: CustomerReference,
    /// How much.
    pub amount: Money,
    /// How (the domain's method; card data travels beside it).
    pub method: PaymentMethod,
    /// The card data of a `card` payment: sent to the bank, never stored.
    pub card: Option<CardData>,
    /// Ask for a recurrent token.
    pub save_token: bool,
    /// Automatic or manual confirmation.
    pub confirmation: Confirmation,
    /// Where the customer returns after 3-D Secure.
    pub return_url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Opaque merchant metadata (JSON text).
    pub metadata: Option<String>,
}

impl Service {
    /// Starts a payment of any method. The payment is stored before the bank
    /// is called, the session is created (and stored) before money can move,
    /// and our payment id travels in the session's metadata, so every unknown
    /// outcome stays resolvable.
    pub async fn start_payment(&self, cmd: StartPaymentCommand) -> Result<Payment, ServiceError> {
        let instrument = match (&cmd.method, cmd.card) {
            (PaymentMethod::Card, Some(card)) => Some(Instrument::Card(card)),
            (PaymentMethod::Card, None) => {
                return Err(ServiceError::Invalid(
                    "a card payment needs card data".into(),
                ));
            }
            (_, Some(_)) => {
                return Err(ServiceError::Invalid(
                    "card data only goes with a card payment".into(),
                ));
            }
            (PaymentMethod::Widget { .. }, None) => None,
            (
                PaymentMethod::Token {
                    token_id,
                    initiator,
                },
                None,
            ) => {
                let token = self.chargeable_token(token_id, &cmd.customer).await?;
                Some(Instrument::Token {
                    secret: token.secret,
                    initiator: *initiator,
                })
            }
            (
                PaymentMethod::Fps {
                    subscription_service,
                },
                None,
            ) => Some(Instrument::Fps(subscription_service.clone())),
            (
                PaymentMethod::FpsBinding {
                    subscription_service,
                },
                None,
            ) => Some(Instrument::FpsBinding(subscription_service.clone())),
        };
        let payment = Payment::new(
            NewPayment {
                id: self.deps.ids.payment_id(),
                customer: cmd.customer,
                amount: cmd.amount,
                method: cmd.method,
                save_token: cmd.save_token,
                confirmation: cmd.confirmation,
                return_url: cmd.return_url,
                description: cmd.description,
                metadata: cmd.metadata,
            },
            self.now(),
        )
        .map_err(ServiceError::invalid)?;
        self.run_payment(payment, instrument, ChangeSet::default())
            .await
    }

    /// A token that exists, belongs to `customer` and can be charged. No bank call.
    pub(crate) async fn chargeable_token(
        &self,
        token_id: &TokenId,
        customer: &CustomerReference,
    ) -> Result<RecurrentToken, ServiceError> {
        let token = self
            .deps
            .tokens
            .get(token_id)
            .await?
            .ok_or(ServiceError::NotFound("token"))?
            .value;
        if token.customer != *customer {
            return Err(ServiceError::Invalid(
                "the token belongs to another customer".into(),
            ));
        }
        if !token.can_charge() {
            return Err(ServiceError::TokenInactive);
        }
        Ok(token)
    }

    /// Stores `payment` (with `with`), creates its bank session and starts it.
    pub(crate) async fn run_payment(
        &self,
        mut payment: Payment,
        instrument: Option<Instrument>,
        mut with: ChangeSet,
    ) -> Result<Payment, ServiceError> {
        let id = payment.id().clone();
        let project = Project::for_method(payment.method());
        with.payments.push(Write::insert(payment.clone()));
        self.deps.uow.commit(with, self.now()).await?;

        let created = self
            .deps
            .gateway
            .create_session(CreateSession {
                project,
                payment_id: id.clone(),
                amount: payment.amount(),
                customer: payment.customer().clone(),
                recurrent: payment.save_token(),
                idempotency_key: format!("{id}:create"),
            })
            .await;
        let session_id = match created {
            Ok(snapshot) => snapshot.session_id,
            Err(error) => {
                // No session means no money could move: the payment failed.
                warn!(payment_id = %id, %error, "session/create failed");
                self.change_payment(
                    &id,
                    PaymentChange::Fact(BankFact::Failed(failure_of(&error))),
                )
                .await?;
                return Err(error.into());
            }
        };
        payment.attach_session(session_id.clone(), self.now());
        let changes = ChangeSet {
            payments: vec![Write {
                value: payment.clone(),
                expected_version: Some(1),
            }],
            ..ChangeSet::default()
        };
        self.deps.uow.commit(changes, self.now()).await?;

        let change = match instrument {
            None => {
                // save_token: the merchant holds the consent (recurrent at
                // session/create, no box); recurrent_checkbox: the widget asks.
                let checkbox = matches!(
                    payment.method(),
                    PaymentMethod::Widget {
                        recurrent_checkbox: true
                    }
                );
                let widget = self
                    .deps
                    .gateway
                    .widget_token(session_id, project, checkbox);
                match widget.await {
                    Ok(widget) => PaymentChange::ShowWidget(widget.public_token),
                    Err(error) => gateway_failure(&id, error),
                }
            }
            Some(_) if !self.token_still_chargeable(&payment).await? => {
                // Disabled since the check: nothing was sent, nothing moved.
                PaymentChange::Fact(BankFact::Failed(Failure {
                    code: BankCode::TokenInactive.code(),
                    message: "the token was disabled before the payment was sent".into(),
                }))
            }
            Some(instrument) => {
                let started = self
                    .deps
                    .gateway
                    .start_payment(StartPayment {
                        project,
                        session_id,
                        payment_id: id.clone(),
                        instrument,
                        amount: payment.amount(),
                        customer: payment.customer().clone(),
                        recurrent: payment.save_token(),
                        return_url: payment.return_url().map(str::to_owned),
                        idempotency_key: format!("{id}:start"),
                    })
                    .await;
                match started {
                    Ok(snapshot) => PaymentChange::of(snapshot),
                    Err(error) => gateway_failure(&id, error),
                }
            }
        };
        let (payment, _) = self.change_payment(&id, change).await?;
        self.follow_up(payment).await
    }

    /// Whether a token payment's token can still be charged, read right
    /// before the payment is sent (a disable may have landed since the
    /// first check). Payments without a token always can.
    async fn token_still_chargeable(&self, payment: &Payment) -> Result<bool, ServiceError> {
        let PaymentMethod::Token { token_id, .. } = payment.method() else {
            return Ok(true);
        };
        Ok(self
            .deps
            .tokens
            .get(token_id)
            .await?
            .is_some_and(|t| t.value.can_charge()))
    }

    /// A payment by id.
    pub async fn payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        Ok(self.read_payment(id).await?.value)
    }

    /// The merchant confirms a payment in `requires_confirmation`.
    pub async fn confirm_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self.change_payment(id, PaymentChange::Confirm).await?;
        self.follow_up(payment).await
    }

    /// The merchant cancels a payment in `requires_confirmation`.
    pub async fn cancel_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self.change_payment(id, PaymentChange::Cancel).await?;
        self.follow_up(payment).await
    }

    /// Refunds a succeeded payment, fully when `amount` is `None`.
    pub async fn refund_payment(
        &self,
        id: &PaymentId,
        amount: Option<Money>,
    ) -> Result<Payment, ServiceError> {
        let payment = self.payment(id).await?;
        let left = payment
            .amount()
            .checked_sub(payment.refunded())
            .map_err(ServiceError::invalid)?;
        let amount = amount.unwrap_or(left);
        payment.check_refund(amount).map_err(|e| match e {
            PaymentError::Transition(t) => ServiceError::State(t.to_string()),
            other => ServiceError::invalid(other),
        })?;
        let session = payment
            .session_id()
            .cloned()
            .ok_or(ServiceError::NotFound("bank session"))?;
        // The key names the refunded total it starts from: the same request
        // twice is one refund at the bank.
        let key = format!(
            "{id}:refund:{}:{}",
            payment.refunded().minor(),
            amount.minor()
        );
        let project = Project::for_method(payment.method());
        let snapshot = self
            .deps
            .gateway
            .refund(session, project, Some(amount), key)
            .await?;
        match snapshot.fact {
            Some(fact @ BankFact::Refunded { .. }) => Ok(self
                .change_payment(id, PaymentChange::Bank(Some(fact), snapshot.details))
                .await?
                .0),
            _ => self.payment(id).await,
        }
    }

    /// A customer's payments, newest first.
    pub async fn list_payments(
        &self,
        customer: &CustomerReference,
    ) -> Result<Vec<Payment>, ServiceError> {
        Ok(self.deps.payments.list_by_customer(customer, 100).await?)
    }
}

/// What a failed bank call means for the payment.
fn gateway_failure(id: &PaymentId, error: GatewayError) -> PaymentChange {
    match error {
        GatewayError::UnknownOutcome(reason) => {
            warn!(payment_id = %id, %reason, "outcome unknown; left pending for reconciliation");
            PaymentChange::OutcomeUnknown
        }
        other => {
            info!(payment_id = %id, error = %other, "the bank refused the payment");
            PaymentChange::Fact(BankFact::Failed(failure_of(&other)))
        }
    }
}
