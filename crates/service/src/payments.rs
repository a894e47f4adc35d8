//! Payments: start, confirm, cancel, refund and read.

use domain::CardData;
use domain::{
    BankCode, BankFact, BankSessionId, Confirmation, CustomerReference, DeclineClass, Failure,
    Money, NewPayment, Payment, PaymentError, PaymentId, PaymentMethod, RecurrentToken, TokenId,
};
use ports::{
    ChangeSet, CreateSession, GatewayError, IdempotencyBinding, IdempotencyLease, Instrument, Page,
    Project, SessionRef, StartPayment, Versioned, Write,
};
use tracing::{info, warn};

use crate::apply::{PaymentChange, Settles, failure_of, token_disabled};
use crate::{Listed, Service, ServiceError};

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
    /// The hold of the request's `Idempotency-Key`: the key is bound to the
    /// payment in the commit that creates it.
    pub idempotency: Option<IdempotencyLease>,
}

impl Service {
    /// Starts a payment of any method. The payment is stored before the bank
    /// is called, the session is created (and stored) before money can move,
    /// and our payment id travels in the session's metadata, so every unknown
    /// outcome stays resolvable.
    pub async fn start_payment(&self, cmd: StartPaymentCommand) -> Result<Payment, ServiceError> {
        let instrument = self
            .instrument(&cmd.method, &cmd.customer, cmd.card)
            .await?;
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
        // The caller's span (the HTTP request's) names the payment from here
        // on, so that every line logged while it is started, the bank
        // gateway's included, carries its id.
        tracing::Span::current().record("payment_id", payment.id().as_str());
        let with = ChangeSet {
            idempotency: cmd.idempotency.map(|lease| IdempotencyBinding {
                lease,
                payment_id: payment.id().clone(),
            }),
            ..ChangeSet::default()
        };
        self.run_payment(payment, instrument, with).await
    }

    /// How a payment paid by `method` is paid at the bank: the card data of a
    /// card payment, the raw token of a token payment (checked chargeable),
    /// nothing for the widget (the bank's widget collects the card).
    async fn instrument(
        &self,
        method: &PaymentMethod,
        customer: &CustomerReference,
        card: Option<CardData>,
    ) -> Result<Option<Instrument>, ServiceError> {
        Ok(match (method, card) {
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
                let token = self.chargeable_token(token_id, customer).await?;
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
        })
    }

    /// Sends again a payment whose bank session was never created (the
    /// process died, or `session/create` did not answer): before
    /// `session/start` nothing can have moved money, so it goes on with a new
    /// session, as the same payment.
    pub(crate) async fn resume(
        &self,
        payment: &Payment,
        resumption: u32,
    ) -> Result<Payment, ServiceError> {
        let instrument = match self.instrument_again(payment, false).await? {
            Ok(instrument) => instrument,
            Err(ended) => return Ok(ended),
        };
        info!(payment_id = %payment.id(), resumption, "resuming a payment whose bank session was never created");
        self.send(payment.clone(), None, instrument, resumption)
            .await
    }

    /// Starts again, in its session, a payment the bank never started
    /// (`session/status` shows the session created and empty): its start was
    /// refused or lost before execution, so nothing moved.
    pub(crate) async fn restart(
        &self,
        payment: &Payment,
        session: BankSessionId,
        restart: u32,
    ) -> Result<Payment, ServiceError> {
        let instrument = match self.instrument_again(payment, true).await? {
            Ok(instrument) => instrument,
            Err(ended) => return Ok(ended),
        };
        let key = format!("{}:start:{restart}", payment.id());
        info!(payment_id = %payment.id(), restart, "starting again a payment the bank never started");
        self.begin(payment.clone(), None, session, instrument, key)
            .await
    }

    /// The instrument to send a stored payment again with, or the payment
    /// ended without a bank call when it cannot be sent: card data is never
    /// kept, and a token may have been disabled since. Without `in_session`
    /// the end applies only while no path has opened a session since.
    async fn instrument_again(
        &self,
        payment: &Payment,
        in_session: bool,
    ) -> Result<Result<Option<Instrument>, Payment>, ServiceError> {
        let ended = |failure: Failure| {
            if in_session {
                PaymentChange::Fact(BankFact::Failed(failure))
            } else {
                PaymentChange::FailUnstarted(failure)
            }
        };
        let end = match payment.method() {
            PaymentMethod::Card => ended(Failure {
                code: BankCode::ProviderUnavailable.code(),
                message:
                    "the bank never started the payment, and card data is not kept to send it again"
                        .into(),
            }),
            method => match self.instrument(method, payment.customer(), None).await {
                Ok(instrument) => return Ok(Ok(instrument)),
                Err(ServiceError::TokenInactive) => ended(token_disabled()),
                Err(error) => return Err(error),
            },
        };
        Ok(Err(self.change_payment(payment.id(), end).await?.0))
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
        payment: Payment,
        instrument: Option<Instrument>,
        mut with: ChangeSet,
    ) -> Result<Payment, ServiceError> {
        with.payments.push(Write::insert(payment.clone()));
        self.deps.uow.commit(with, self.now()).await?;
        // Inserted: version 1 (the port's rule), so the next step needs no read.
        self.send(payment, Some(1), instrument, 0).await
    }

    /// Creates the stored payment's bank session (a new `session/create`
    /// key for each `resumption`), records it, and starts the payment in it.
    /// `version` is the stored payment's, when the caller knows it (else it is read).
    /// A `session/create` that does not answer leaves the payment pending,
    /// marked to be resumed at once; one the bank refuses fails it (nothing
    /// moved either way).
    async fn send(
        &self,
        payment: Payment,
        version: Option<i64>,
        instrument: Option<Instrument>,
        resumption: u32,
    ) -> Result<Payment, ServiceError> {
        let id = payment.id().clone();
        let project = Project::for_method(payment.method());
        let key = match resumption {
            0 => format!("{id}:create"),
            n => format!("{id}:create:{n}"),
        };
        let created = self
            .deps
            .gateway
            .create_session(CreateSession {
                project,
                payment_id: id.clone(),
                amount: payment.amount(),
                customer: payment.customer().clone(),
                recurrent: payment.save_token(),
                idempotency_key: key,
            })
            .await;
        let session_id = match created {
            Ok(snapshot) => snapshot.session_id,
            Err(error @ GatewayError::Permanent { .. }) => {
                // The bank refused to open a session: nothing moved, and
                // trying again cannot help (unless another path has opened one).
                warn!(payment_id = %id, %error, "session/create refused");
                let (payment, _) = self
                    .change_payment(&id, PaymentChange::FailUnstarted(failure_of(&error)))
                    .await?;
                return if payment.session_id().is_some() {
                    Ok(payment)
                } else {
                    Err(error.into())
                };
            }
            Err(error) => {
                // No answer, or the key was already used by another path:
                // not our customer's failure. The payment goes on with a new
                // session as soon as reconciliation runs (a path that
                // attached a session meanwhile carries it instead).
                warn!(payment_id = %id, %error, "session/create did not answer; the payment will be resumed");
                let (payment, _) = self
                    .change_payment(&id, PaymentChange::OutcomeUnknown)
                    .await?;
                return Ok(payment);
            }
        };
        let known = version.map(|version| Versioned {
            value: payment,
            version,
        });
        // A token payment's session is attached only while its token can be
        // charged (checked by the write), so the start below needs no read.
        let (stored, attached) = self
            .change_read_payment(
                &id,
                known,
                PaymentChange::AttachSession(session_id.clone()),
                Settles::Nothing,
            )
            .await?;
        if !attached.is_changed() || stored.value.session_id() != Some(&session_id) {
            // Another path attached its own session first and carries the
            // payment, or the token was disabled meanwhile and it ended unsent.
            return Ok(stored.value);
        }
        self.begin(
            stored.value,
            Some(stored.version),
            session_id,
            instrument,
            format!("{id}:start"),
        )
        .await
    }

    /// Starts the payment in its recorded session: the widget's public
    /// token, or `session/start/payment` with `start_key`. A token payment's
    /// token was checked chargeable by the commit that attached the session,
    /// or read just before (a restart). `version` is the stored payment's,
    /// when the caller knows it.
    async fn begin(
        &self,
        payment: Payment,
        version: Option<i64>,
        session_id: BankSessionId,
        instrument: Option<Instrument>,
        start_key: String,
    ) -> Result<Payment, ServiceError> {
        let id = payment.id().clone();
        let project = Project::for_method(payment.method());
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
                    .widget_token(SessionRef::new(session_id, project), checkbox);
                match widget.await {
                    Ok(widget) => PaymentChange::ShowWidget(widget.public_token),
                    // Only a public token was asked for: nothing moved.
                    Err(error) => PaymentChange::Fact(BankFact::Failed(failure_of(&error))),
                }
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
                        idempotency_key: start_key,
                    })
                    .await;
                match started {
                    Ok(snapshot) => PaymentChange::of(snapshot),
                    Err(error) => gateway_failure(&id, &error),
                }
            }
        };
        let known = version.map(|version| Versioned {
            value: payment,
            version,
        });
        let (stored, _) = self
            .change_read_payment(&id, known, change, Settles::Nothing)
            .await?;
        self.follow_up(stored).await
    }

    /// A payment by id.
    pub async fn payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        Ok(self.read_payment(id).await?.value)
    }

    /// The merchant confirms a payment in `requires_confirmation`.
    pub async fn confirm_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self
            .change_read_payment(id, None, PaymentChange::Confirm, Settles::Nothing)
            .await?;
        self.follow_up(payment).await
    }

    /// The merchant cancels a payment in `requires_confirmation`.
    pub async fn cancel_payment(&self, id: &PaymentId) -> Result<Payment, ServiceError> {
        let (payment, _) = self
            .change_read_payment(id, None, PaymentChange::Cancel, Settles::Nothing)
            .await?;
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
            .unwrap_or_else(|_| Money::zero(payment.amount().currency()));
        let amount = amount.unwrap_or(left);
        payment.check_refund(amount).map_err(|e| match e {
            PaymentError::Transition(t) => ServiceError::State(t.to_string()),
            other => ServiceError::Refused {
                code: other.code(),
                message: other.to_string(),
            },
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
            .refund(SessionRef::new(session, project), Some(amount), key)
            .await?;
        match snapshot.fact {
            Some(fact @ BankFact::Refunded { .. }) => Ok(self
                .change_payment(id, PaymentChange::Bank(Some(fact), snapshot.details))
                .await?
                .0),
            _ => self.payment(id).await,
        }
    }

    /// A page of a customer's payments, newest first. The cursor must be
    /// one of the customer's payments.
    pub async fn list_payments(
        &self,
        customer: &CustomerReference,
        page: Page<PaymentId>,
    ) -> Result<Listed<Payment>, ServiceError> {
        let theirs = match &page.after {
            Some(after) => self
                .deps
                .payments
                .get(after)
                .await?
                .is_some_and(|p| p.value.customer() == customer),
            None => true,
        };
        Listed::read(page, theirs, |page| {
            self.deps.payments.list_by_customer(customer, page)
        })
        .await
    }
}

/// What a failed `session/start/payment` means for the payment. Only a
/// documented decline ends it; anything else (a provider error, a 5xx, a
/// timeout, an unreadable answer, a code nobody documented) may have moved
/// money or not: the payment stays pending for `session/status` to settle.
fn gateway_failure(id: &PaymentId, error: &GatewayError) -> PaymentChange {
    let declined = match error {
        GatewayError::Permanent { code, .. } => matches!(
            BankCode::parse(code.as_str()).map(BankCode::class),
            Some(
                DeclineClass::SoftDecline
                    | DeclineClass::HardDecline
                    | DeclineClass::NeedsCustomer
                    | DeclineClass::Cancelled
            )
        ),
        _ => false,
    };
    if declined {
        info!(payment_id = %id, %error, "the bank declined the payment");
        PaymentChange::Fact(BankFact::Failed(failure_of(error)))
    } else {
        warn!(payment_id = %id, %error, "outcome unknown; left pending for session/status");
        PaymentChange::OutcomeUnknown
    }
}
