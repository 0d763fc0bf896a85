//! A future that outlives its caller: dropped before it has ended, it goes
//! on in a task of its own. What an API call under a concurrency permit
//! needs, so the permit is held until AvePoint is done with the request.
//!
//! Imports nothing of the crate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A call that, dropped before it has ended, goes on in a task of its
/// own: it holds a concurrency permit that must outlive its caller (see
/// `ApiClient::call_to_end`). Until then it runs in its caller's task:
/// a task for every call cost a spawn and two more wake-ups for each
/// report (about 6 % of a scrape's instructions).
pub(super) struct RunsToEnd<F: Future + Send + 'static> {
    call: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> RunsToEnd<F> {
    /// `call`, to be awaited.
    pub(super) fn new(call: F) -> Self {
        Self {
            call: Some(Box::pin(call)),
        }
    }
}

impl<F: Future + Send + 'static> Future for RunsToEnd<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(call) = self.call.as_mut() else {
            // Polled again after it ended: `.await` never does.
            return Poll::Pending;
        };
        let output = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for RunsToEnd<F> {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        // Without a runtime (it is shutting down) the call ends here.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ended = call.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::sync::{Semaphore, oneshot};

    use super::RunsToEnd;

    #[tokio::test]
    async fn an_awaited_call_answers_its_caller() {
        assert_eq!(RunsToEnd::new(async { 42 }).await, 42);
    }

    /// A caller that gives up mid-flight (its deadline passed) leaves the
    /// call running: the permit it holds comes back only when the call
    /// ends, not when the caller left.
    #[tokio::test]
    async fn a_call_dropped_mid_flight_keeps_its_permit_until_it_ends() {
        let permits = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let (answer, answered) = oneshot::channel::<()>();
        let ended = Arc::new(AtomicBool::new(false));
        let call = RunsToEnd::new({
            let ended = Arc::clone(&ended);
            async move {
                let _permit = permit;
                let _ = answered.await;
                ended.store(true, Ordering::SeqCst);
            }
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert!(gave_up.is_err(), "the call cannot have ended yet");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(permits.available_permits(), 0, "released with the caller");
        assert!(!ended.load(Ordering::SeqCst));

        answer.send(()).unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), permits.acquire()).await;
        assert!(back.is_ok(), "the permit never came back");
        assert!(ended.load(Ordering::SeqCst));
    }
}
