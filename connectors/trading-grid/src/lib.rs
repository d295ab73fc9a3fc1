//! The Trading Grid connector. Trading Grid moves documents as files through
//! mailboxes (AS2, SFTP, ...); there is no REST API to send or receive them.
//! A deployment receives inbound documents as files in a mailbox (local or
//! SFTP), which this crate reads safely, and writes outbound ones there. Its
//! one REST API is read-only visibility: the Lens transaction search.

pub mod lens;
pub mod mailbox;
pub mod partners;
