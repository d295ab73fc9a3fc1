//! The Lens visibility client: OAuth2 client credentials (HTTP Basic), and
//! the GraphQL transaction search `getTransactions`, paged or scrolled.

mod client;
mod error;
mod model;

pub use client::{LensArgs, LensClient, SearchQuery, DEFAULT_SINCE_ARGUMENTS};
pub use error::LensError;
pub use model::{parse_lens_time, ContentKey, LensTransaction, TransactionPage};
