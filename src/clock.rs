//! Waiting helpers shared by the tasks that keep timers of their own.

use tokio::time::Instant;

/// Sleeps until `deadline`, or forever when there is none (for a
/// `select!` arm that may have nothing to wait for).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
