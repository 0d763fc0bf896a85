//! (Unit tests only.) A tracing writer that keeps what is logged, so a
//! test can read the log back and assert what a user would see in it.

use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

use crate::sync::lock;

/// What was logged while it was this thread's subscriber.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A capture set as this thread's subscriber until the guard drops.
    pub(crate) fn install() -> (CapturedLog, DefaultGuard) {
        let captured = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&self) -> CapturedLog {
        self.clone()
    }
}
