pub mod audit;
pub mod demo;
pub mod dlq;
pub mod edi;
pub mod replay;
pub mod schemas;
pub mod topics;
