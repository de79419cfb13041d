//! Deliberate handler panics kept out of the panic hook.
//!
//! With `RUST_BACKTRACE=1`, the default hook symbolizes a backtrace of a debug test binary,
//! which can take seconds the first time. A handler that panics on its first poll does so on
//! its connection's task, so for those seconds the connection is silent and the client rightly
//! takes it for dead ("stopped answering"). Tests whose handlers panic on purpose silence
//! exactly those messages; every other panic (a failed assertion) still reaches the default
//! hook.

use std::sync::{Mutex, Once};

static SILENCED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Keeps panics whose message is exactly `message` out of the panic hook, for the rest of the
/// test binary's life.
pub fn silence_panics_saying(message: &'static str) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            let silenced = SILENCED.lock().unwrap_or_else(|p| p.into_inner());
            if !text.is_some_and(|text| silenced.contains(&text)) {
                default(info);
            }
        }));
    });
    SILENCED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(message);
}
