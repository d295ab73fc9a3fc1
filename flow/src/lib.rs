//! What every flow consumer stands on, so that a consumer binary is its flow
//! logic and little else:
//!
//! - [`FlowHandler`]: a flow's logic, what one record becomes; [`Flow`] runs it
//!   on the consumer loop;
//! - [`FlowArgs`] and [`FlowContext`]: the flags and the set-up every flow
//!   shares (the store, the Amplience client, partner profiles, templates);
//! - [`effects`]: side effects performed once, claimed in a ledger by a
//!   deterministic key, each reported as a `DeliveryPerformed` event;
//! - [`partners`]: the trading partner profiles (`deploy/partners.toml`);
//! - [`scheduler`] and [`clock`]: durable timers fired by an injectable clock;
//! - [`templates`]: messages rendered from the latest approved version of a
//!   template content item, strictly (a missing field is an error, never a hole);
//! - [`keyed_locks`]: one handler at a time per business exchange, whatever
//!   partitions its records are on;
//! - [`hub_check`]: the Amplience hub has what the flow needs before it consumes.

pub mod args;
pub mod budget;
pub mod clock;
pub mod config;
pub mod context;
pub mod effects;
pub mod error;
pub mod handler;
pub mod hub_check;
pub mod keyed_items;
pub mod keyed_locks;
pub mod messages;
/// Trading partner profiles: the one reader tg-producer and the consumers share.
pub mod partners {
    pub use gridsync_trading_grid::partners::*;
}
pub mod raise;
pub mod scheduler;
pub mod telemetry;
pub mod templates;

pub use args::FlowArgs;
pub use config::MessageConfig;
pub use context::FlowContext;
pub use effects::{Effects, SideEffect};
pub use error::FlowError;
pub use handler::{Flow, FlowHandler};
pub use keyed_locks::KeyedLocks;
pub use messages::{Audience, Message, Messages, Send};
pub use partners::{PartnerProfile, PartnerProfiles};
pub use raise::Raise;
pub use templates::{Rendered, Templates};
