//! The Amplience Dynamic Content connector: webhook verification, and clients
//! for the Content Management API (OAuth2, content items, workflow, publish,
//! the hub's content types and webhooks) and the Content Delivery API; and
//! what gridsync needs of a hub ([`setup`]: set it up, check it).

pub mod admin;
pub mod delivery;
pub mod delivery_key;
pub mod error;
pub mod management;
pub mod media;
pub mod model;
pub mod setup;
pub mod webhook;

pub use delivery::DeliveryClient;
pub use delivery_key::DeliveryKey;
pub use error::AmplienceError;
pub use gridsync_http::{Backoff, RateLimiter, Secret, TransportStats, DEFAULT_BACKOFF};
pub use management::{Ensured, ManagementArgs, ManagementClient};
pub use media::{Fetched, MediaClient, MediaLink};
pub use model::{ContentItem, NewContentItem};

/// The shared HTTP machinery, with Amplience's errors.
pub(crate) type Transport = gridsync_http::Transport<AmplienceError>;
pub(crate) type TokenSource = gridsync_http::TokenSource<AmplienceError>;
