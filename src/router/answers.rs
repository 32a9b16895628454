//! A stream's answers from one future that lives as long as the stream.
//!
//! `futures_util::stream::unfold` builds a new future for every item and moves it, with the state
//! it owns, into place: for the router that was the stream's state (about 1 KB) and the phase
//! handlers' future (2.6 KB) copied for every message Envoy sent. Here the whole conversation is
//! one boxed future, built once; it leaves each answer in a slot and pauses until the stream is
//! polled for the next one.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Where the conversation leaves an answer for the stream to hand out.
pub struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    /// Leaves `item`, then pauses the conversation once: the stream hands the item out and
    /// polls the conversation again when asked for the next.
    pub async fn give(&self, item: T) {
        *self.lock() = Some(item);
        PauseOnce(false).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // Nothing panics while holding the lock.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Pending` once, without asking to be woken: the stream returns the item it was given
/// instead, and whoever reads the stream polls it again for the next.
struct PauseOnce(bool);

impl Future for PauseOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// The stream of what `conversation` gives to its slot; it ends when the conversation returns.
pub struct Answers<T> {
    conversation: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    slot: Arc<Slot<T>>,
}

impl<T: Send + 'static> Answers<T> {
    /// `conversation` is given the slot to leave its answers in.
    pub fn new<F, Fut>(conversation: F) -> Answers<T>
    where
        F: FnOnce(Arc<Slot<T>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Slot(Mutex::new(None)));
        // Built in its box ([`super::in_place`]) when `conversation` builds it by a call that is
        // not inlined.
        Answers {
            conversation: Some(super::in_place::boxed(|| conversation(slot.clone()))),
            slot,
        }
    }
}

impl<T> futures_util::Stream for Answers<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Some(conversation) = self.conversation.as_mut() else {
            return Poll::Ready(None);
        };
        let ended = conversation.as_mut().poll(cx).is_ready();
        if ended {
            // A finished future is never polled again.
            self.conversation = None;
        }
        match self.slot.lock().take() {
            Some(item) => Poll::Ready(Some(item)),
            None if ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn every_answer_in_order_then_the_end() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let answers = Answers::new(|slot| async move {
            // Waits for input between answers, and answers twice for one input.
            while let Some(n) = rx.recv().await {
                slot.give(n).await;
                if n % 2 == 0 {
                    slot.give(n + 100).await;
                }
            }
        });
        let reader = tokio::spawn(answers.collect::<Vec<u32>>());
        for n in 1..=4 {
            tx.send(n).expect("send");
            tokio::task::yield_now().await;
        }
        drop(tx);
        assert_eq!(reader.await.expect("join"), [1, 2, 102, 3, 4, 104]);
    }

    #[tokio::test]
    async fn a_conversation_with_nothing_to_say_ends_the_stream() {
        let mut answers = Answers::<u32>::new(|_slot| async {});
        assert_eq!(answers.next().await, None);
        assert_eq!(answers.next().await, None, "polled again after the end");
    }
}
