//! The session state machine of the ConnectionActor, free of I/O: login status, the reconnect
//! backoff schedule (capped exponential with jitter) and heartbeat timing. Time and randomness
//! are passed in, so it is tested deterministically.

use std::time::{Duration, Instant};

/// Login status (api.md `get_login_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStatus {
    /// Not logged in.
    Logout,
    /// `login` in progress.
    Logining,
    /// Logged in (also while reconnecting).
    Logined,
}

impl LoginStatus {
    /// The api.md spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginStatus::Logout => "logout",
            LoginStatus::Logining => "logining",
            LoginStatus::Logined => "logined",
        }
    }
}

/// Capped exponential backoff with jitter for reconnect attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays start at `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `jitter` in `[0, 1)` spreads it over `[d/2, d)` so that
    /// many clients cut off together do not reconnect together.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let j = jitter.clamp(0.0, 1.0);
        capped.mul_f64(0.5 + 0.5 * j)
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A connection succeeded: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Heartbeat timing: when to send the next heartbeat and when the link counts as dead.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    last_received: Instant,
    last_sent: Instant,
}

impl Heartbeat {
    /// A heartbeat every `interval`; the link is dead after three intervals of silence.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            last_received: now,
            last_sent: now,
        }
    }

    /// Any frame arrived.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// Any frame was sent (the server's idle timeout counts what it receives).
    pub fn on_send(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Whether a heartbeat is due at `now`: nothing sent for an interval (marks it sent).
    pub fn poll_send(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last_sent) >= self.interval {
            self.last_sent = now;
            true
        } else {
            false
        }
    }

    /// Whether the link has been silent too long at `now`.
    pub fn is_dead(&self, now: Instant) -> bool {
        now.duration_since(self.last_received) > self.interval * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<u128> = (0..6)
            .map(|_| b.next_delay(0.999_999).as_millis())
            .collect();
        assert_eq!(d, [99, 199, 399, 799, 999, 999]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
    }

    #[test]
    fn heartbeat_due_and_dead() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(Duration::from_secs(10), t0);
        assert!(!h.poll_send(t0 + Duration::from_secs(5)));
        assert!(h.poll_send(t0 + Duration::from_secs(10)));
        assert!(!h.poll_send(t0 + Duration::from_secs(11)));
        h.on_send(t0 + Duration::from_secs(15));
        assert!(!h.poll_send(t0 + Duration::from_secs(24)));
        assert!(h.poll_send(t0 + Duration::from_secs(25)));
        h.on_receive(t0 + Duration::from_secs(12));
        assert!(!h.is_dead(t0 + Duration::from_secs(42)));
        assert!(h.is_dead(t0 + Duration::from_secs(43)));
    }
}
