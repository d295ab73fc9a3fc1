//! A flow is its logic: a [`FlowHandler`] says what one record becomes, in the flow's own
//! error ([`FlowError`]); [`Flow`] runs it on the consumer loop, which retries what is
//! transient and dead-letters what is not.

use std::{future::Future, sync::Arc};

use gridsync_core::kafka::{Handler, HandlerError, Record};

use crate::FlowError;

/// The work one record of a flow's topics becomes. Like every handler it must be idempotent
/// (a record may come again after a crash or a rebalance): side effects go through the
/// ledger ([`crate::Effects`]), which performs each once.
pub trait FlowHandler: Send + Sync + 'static {
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), FlowError>> + Send;
}

/// A flow shared with its timers (the scheduler fires them on the same state).
impl<F: FlowHandler> FlowHandler for Arc<F> {
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), FlowError>> + Send {
        F::handle(self, record)
    }
}

/// A [`FlowHandler`] as the consumer loop's [`Handler`]: what a flow's `setup` returns.
pub struct Flow<F>(pub F);

impl<F: FlowHandler> Handler for Flow<F> {
    type Input = Record;

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.0.handle(record).await.map_err(HandlerError::from)
    }
}
