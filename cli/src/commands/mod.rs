pub mod demo;
pub mod dlq;
pub mod edi;
pub mod schemas;
pub mod topics;
