//! Who may hold a connection.
//!
//! Connections that have not logged in yet are at most `max_unauthenticated`:
//! a new one beyond that evicts the oldest (which gets `421`), so holding
//! connections open without logging in can neither keep a user out nor take
//! a logged-in session's slot, and the login deadline ends each of them
//! anyway. Logged-in sessions are at most `max_sessions`; a login beyond
//! that gets `421` instead of `230`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Admission {
    max_unauthenticated: usize,
    /// Connections not logged in, oldest first, with what wakes each when evicted.
    waiting: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    next_id: AtomicU64,
    sessions: Arc<Semaphore>,
}

/// One connection's place: evicted while it has not logged in, or holding a
/// session slot once it has. Leaves its place when dropped.
#[derive(Debug)]
pub struct Gate {
    id: u64,
    admission: Arc<Admission>,
    evicted: Arc<Notify>,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Admission {
    pub fn new(max_unauthenticated: usize, max_sessions: usize) -> Arc<Self> {
        Arc::new(Self {
            max_unauthenticated,
            waiting: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            sessions: Arc::new(Semaphore::new(max_sessions)),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<Notify>)>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a new connection; returns its gate and whether an older
    /// connection was evicted to make room.
    pub fn admit(self: &Arc<Self>) -> (Gate, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        let mut waiting = self.waiting();
        let mut made_room = false;
        while waiting.len() >= self.max_unauthenticated {
            if let Some((_, oldest)) = waiting.pop_front() {
                oldest.notify_one();
                made_room = true;
            }
        }
        waiting.push_back((id, evicted.clone()));
        drop(waiting);
        let gate = Gate {
            id,
            admission: self.clone(),
            evicted,
            slot: Mutex::new(None),
        };
        (gate, made_room)
    }

    /// Connections not logged in yet.
    pub fn unauthenticated(&self) -> usize {
        self.waiting().len()
    }
}

impl Gate {
    /// Resolves when this connection, not logged in yet, was evicted.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// A successful login: leaves the not-logged-in queue and takes a session
    /// slot. False when every slot is taken.
    pub fn log_in(&self) -> bool {
        self.admission.waiting().retain(|(id, _)| *id != self.id);
        match self.admission.sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                *self
                    .slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(permit);
                true
            }
            Err(_) => false,
        }
    }

    pub fn logged_in(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.admission.waiting().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_oldest_waiting_connection_is_evicted_and_logins_are_capped() {
        let admission = Admission::new(2, 1);
        let (first, _) = admission.admit();
        let (second, made_room) = admission.admit();
        assert!(!made_room);
        let (third, made_room) = admission.admit();
        assert!(made_room, "the third connection must evict one");
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest was evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.evicted())
                .await
                .is_err(),
            "the second was not evicted"
        );
        assert_eq!(admission.unauthenticated(), 2);
        // Logging in leaves the queue; only one session slot.
        assert!(second.log_in());
        assert!(second.logged_in());
        assert_eq!(admission.unauthenticated(), 1);
        assert!(!third.log_in(), "no second session slot");
        drop(second);
        assert!(third.log_in(), "the slot is free again");
        drop(third);
        assert_eq!(admission.unauthenticated(), 0);
    }
}
