//! The merchant wire format: every request and response as a typed struct,
//! from which the OpenAPI document's schemas are derived (so required,
//! nullable, formats and enums cannot drift from what the API does). Domain
//! types are not `Serialize`; these modules map them explicitly.

mod requests;
mod responses;
mod shared;
mod time;

pub use requests::{
    AdvanceIn, CardIn, CreatePaymentIn, CreateSubscriptionIn, EventsQuery, IntervalIn, ListQuery,
    MethodIn, PaymentAction, RefundIn, SubscriptionAction, TokenQuery, UpdateSubscriptionIn,
};
pub use responses::{
    BankView, CardView, ChargeList, ChargeView, Clock, EventList, EventView, FailureView,
    IntervalView, JsonPresenter, MethodView, NextActionView, ObjectKind, PaymentList, PaymentView,
    PeriodView, StatusView, SubscriptionView, TokenList, TokenMethodName, TokenMethodView,
    TokenRef, TokenView, event_body,
};
pub use shared::{
    Amount, ConfirmationName, Customer, InitiatorName, IntervalUnitName, SubscriptionServiceInfo,
};
pub use time::{parse_timestamp, timestamp};
