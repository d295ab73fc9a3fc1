//! The Amplience Dynamic Content connector: webhook verification, and clients
//! for the Content Management API (OAuth2, content items, workflow, publish)
//! and the Content Delivery API.

pub mod auth;
pub mod delivery;
pub mod delivery_key;
pub mod error;
pub mod management;
pub mod model;
pub mod rate_limit;
pub mod transport;
pub mod webhook;

pub use delivery::DeliveryClient;
pub use delivery_key::DeliveryKey;
pub use error::AmplienceError;
pub use management::{Ensured, ManagementArgs, ManagementClient};
pub use model::{ContentItem, NewContentItem};
pub use webhook::Secret;
