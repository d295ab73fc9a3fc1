pub mod demo;
pub mod dlq;
pub mod schemas;
pub mod topics;
