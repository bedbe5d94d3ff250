//! [`Ticket`]: store work that completes later — an entry waiting for its group commit, a lookup running on a
//! backend's own runtime — which synchronous code waits for and asynchronous code awaits, so that a request
//! handler never parks a runtime worker on a commit.
use crate::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// The outcome of store work that may not be finished yet.
#[must_use = "a ticket does nothing until waited for or awaited"]
#[derive(Debug)]
pub struct Ticket<T>(Inner<T>);

#[derive(Debug)]
enum Inner<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(oneshot::Receiver<Result<T, StoreError>>),
}

/// Where the outcome of a [`Ticket`] is sent from; dropping it unsent fails the ticket.
#[derive(Debug)]
pub struct TicketSender<T>(oneshot::Sender<Result<T, StoreError>>);

impl<T> TicketSender<T> {
    /// Completes the ticket (its holder may have gone: then nobody is told).
    pub fn send(self, outcome: Result<T, StoreError>) {
        let _ = self.0.send(outcome);
    }
}

fn gone() -> StoreError {
    StoreError::Db("the store stopped before the work finished".into())
}

impl<T> Ticket<T> {
    /// A ticket that is already done.
    pub fn ready(outcome: Result<T, StoreError>) -> Ticket<T> {
        Ticket(Inner::Ready(Some(outcome)))
    }

    /// A ticket and the sender that completes it.
    pub fn channel() -> (TicketSender<T>, Ticket<T>) {
        let (tx, rx) = oneshot::channel();
        (TicketSender(tx), Ticket(Inner::Pending(rx)))
    }

    /// Blocks until the work is done. Not for a runtime's worker threads (await the ticket there).
    pub fn wait(self) -> Result<T, StoreError> {
        match self.0 {
            Inner::Ready(r) => r.unwrap_or_else(|| Err(gone())),
            Inner::Pending(rx) => rx.blocking_recv().unwrap_or_else(|_| Err(gone())),
        }
    }
}

impl<T> Future for Ticket<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Inner::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| Err(gone()))),
            Inner::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(gone()))),
        }
    }
}

impl<T> Unpin for Ticket<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_waited_for_or_fails_when_its_sender_goes() {
        assert_eq!(Ticket::ready(Ok(3)).wait().unwrap(), 3);
        let (tx, t) = Ticket::channel();
        std::thread::spawn(move || tx.send(Ok(7)));
        assert_eq!(t.wait().unwrap(), 7);
        let (tx, t) = Ticket::<u8>::channel();
        drop(tx);
        assert!(t.wait().is_err());
    }
}
