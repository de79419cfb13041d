//! A spinner on stderr for waits longer than a second, shown only when stderr is a terminal,
//! so scripts and pipes never see it.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// Waits shorter than this show nothing.
const DELAY: Duration = Duration::from_secs(1);
/// How often the spinner turns.
const TICK: Duration = Duration::from_millis(100);

/// A spinner that appears on stderr after [`DELAY`] and disappears when dropped.
#[derive(Debug)]
pub struct Spinner {
    shown: Option<(ProgressBar, JoinHandle<()>)>,
}

impl Spinner {
    /// Starts timing a wait described by `message`; the spinner shows if the wait lasts.
    /// Needs a Tokio runtime.
    pub fn start(message: impl Into<String>) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner { shown: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        let later = bar.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(DELAY).await;
            later.set_draw_target(ProgressDrawTarget::stderr());
            later.enable_steady_tick(TICK);
        });
        Spinner {
            shown: Some((bar, task)),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some((bar, task)) = self.shown.take() {
            task.abort();
            bar.finish_and_clear();
        }
    }
}

/// Awaits `future`, with a spinner saying `message` if it takes more than a second.
pub async fn waiting<F: Future>(message: impl Into<String>, future: F) -> F::Output {
    let _spinner = Spinner::start(message);
    future.await
}
