//! The Amplience Dynamic Content connector.

pub mod webhook;
