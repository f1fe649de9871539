//! [`eventually`]: bounded polling for state that is asynchronous by nature.

use std::time::Duration;

/// Polls `condition` up to `attempts` times, sleeping `interval` (tokio time) between tries;
/// returns whether it ever held.
///
/// **Use sparingly.** It is for state that becomes true after the response a test awaited (a
/// metric recorded when a body ends, an endpoint ejected by a background task), never for
/// readiness: servers and proxies are awaited ready, not polled. Assert on the result, so a
/// failure names the condition:
///
/// ```
/// # use std::time::Duration;
/// # use std::sync::atomic::{AtomicU32, Ordering};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let polls = AtomicU32::new(0);
/// let held = mesh_test::eventually(10, Duration::from_millis(1), || async {
///     polls.fetch_add(1, Ordering::Relaxed) >= 2
/// })
/// .await;
/// assert!(held, "condition held within 10 attempts");
/// # }
/// ```
#[must_use = "assert on the result"]
pub async fn eventually<F, Fut>(attempts: usize, interval: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for attempt in 1..=attempts {
        if condition().await {
            return true;
        }
        if attempt < attempts {
            tokio::time::sleep(interval).await;
        }
    }
    false
}
