//! The Trading Grid connector. Trading Grid moves documents as files through
//! mailboxes (AS2, SFTP, ...); there is no REST API to send or receive them.
//! A deployment receives inbound documents as files in a mailbox, which this
//! crate reads safely.

pub mod mailbox;
