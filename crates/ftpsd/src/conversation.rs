//! Which of libunftp's replies answers which command.
//!
//! The relay passes one command at a time to libunftp and waits for its
//! reply before the next ([`Conversation::wait_turn`]): libunftp itself
//! sends some replies through an internal queue (`CWD`, `SIZE`, ... and every
//! transfer's final reply), which a pipelined command can overtake, and the
//! relay answers some commands itself (`FEAT`, `PBSZ`, `MFMT`, a missing
//! path's `550`), which must not overtake a reply still owed. While a
//! transfer's final reply is pending, only `ABOR` goes through; the rest
//! wait for that reply. So every reply can be told apart: the answer to the
//! one command awaited, a transfer's final reply, or the answer to a
//! command the relay injected itself ([`Conversation::inject`], e.g. `PWD`
//! to learn the current directory), which the client never sees.

use tokio::sync::{oneshot, watch};

/// What the relay waits for from libunftp.
#[derive(Debug, Default)]
struct Exchange {
    /// Commands passed on whose reply has not come, oldest first (at most
    /// one, or two with an `ABOR` during a transfer).
    awaited: std::collections::VecDeque<Awaited>,
    /// A transfer's `1xx` went out; its final reply has not.
    transfer: bool,
}

#[derive(Debug)]
enum Awaited {
    Client,
    /// The relay's own command: its reply goes here, not to the client.
    Injected(oneshot::Sender<String>),
}

/// Who a reply of libunftp's is for.
#[derive(Debug)]
pub enum Answer {
    /// The client's command awaited (a `1xx` included).
    Command,
    /// The final reply of the transfer under way.
    TransferFinal,
    /// An injected command's: swallow it and hand it over.
    Injected(oneshot::Sender<String>),
    /// Nothing was awaited (libunftp closing an idle session, say).
    Unsolicited,
}

/// One session's exchange with libunftp, shared by the command loop and
/// the reply forwarder.
#[derive(Debug)]
pub struct Conversation {
    state: watch::Sender<Exchange>,
}

impl Default for Conversation {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Exchange::default()),
        }
    }
}

impl Conversation {
    /// Waits until the relay may pass on (or answer) the next command: every
    /// command passed on has its reply, and no transfer is under way unless
    /// the command is `ABOR`.
    pub async fn wait_turn(&self, abort: bool) {
        let mut state = self.state.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = state
            .wait_for(|s| s.awaited.is_empty() && (abort || !s.transfer))
            .await;
    }

    /// Nothing is awaited and no transfer is under way.
    pub fn is_quiet(&self) -> bool {
        let s = self.state.borrow();
        s.awaited.is_empty() && !s.transfer
    }

    /// The client's command went to libunftp.
    pub fn passed_on(&self) {
        self.state
            .send_modify(|s| s.awaited.push_back(Awaited::Client));
    }

    /// The relay's own command goes to libunftp: returns where its reply
    /// (the final line, code included) will arrive.
    pub fn inject(&self) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.state
            .send_modify(|s| s.awaited.push_back(Awaited::Injected(tx)));
        rx
    }

    /// A reply of libunftp's ended with the line of `code`: who it is for.
    pub fn answer(&self, code: &str) -> Answer {
        let preliminary = code.starts_with('1');
        let mut answer = Answer::Unsolicited;
        self.state.send_modify(|s| {
            answer = if s.transfer && !preliminary && s.awaited.is_empty() {
                s.transfer = false;
                Answer::TransferFinal
            } else if s.transfer && !preliminary && s.awaited.len() == 1 {
                // An ABOR during the transfer: its reply and the transfer's
                // final one come in either order; the first ends the transfer.
                s.transfer = false;
                Answer::TransferFinal
            } else {
                match s.awaited.pop_front() {
                    Some(Awaited::Client) => Answer::Command,
                    Some(Awaited::Injected(tx)) => Answer::Injected(tx),
                    None => Answer::Unsolicited,
                }
            };
        });
        answer
    }

    /// The next reply line belongs to an injected command.
    pub fn next_is_injected(&self) -> bool {
        let s = self.state.borrow();
        !s.transfer && matches!(s.awaited.front(), Some(Awaited::Injected(_)))
    }

    /// A transfer's `1xx` went out to the client.
    pub fn transfer_started(&self) {
        self.state.send_modify(|s| s.transfer = true);
    }

    /// The relay answered the transfer itself (its data connection failed).
    pub fn transfer_ended(&self) {
        self.state.send_modify(|s| s.transfer = false);
    }

    /// Whether a transfer's final reply is pending.
    pub fn transfer_pending(&self) -> bool {
        self.state.borrow().transfer
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    async fn turn_comes(c: &Conversation, abort: bool) -> bool {
        tokio::time::timeout(Duration::from_millis(50), c.wait_turn(abort))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn one_command_at_a_time_and_only_abor_during_a_transfer() {
        let c = Conversation::default();
        assert!(turn_comes(&c, false).await);
        c.passed_on();
        assert!(!turn_comes(&c, false).await, "a reply is owed");
        assert!(matches!(c.answer("150"), Answer::Command));
        c.transfer_started();
        assert!(!turn_comes(&c, false).await, "the transfer's reply is owed");
        assert!(turn_comes(&c, true).await, "ABOR may go");
        assert!(matches!(c.answer("226"), Answer::TransferFinal));
        assert!(c.is_quiet());

        let rx = c.inject();
        assert!(matches!(c.answer("257"), Answer::Injected(_)));
        drop(rx);
        assert!(matches!(c.answer("421"), Answer::Unsolicited));

        // ABOR during a transfer: two replies, in either order.
        c.passed_on();
        c.answer("150");
        c.transfer_started();
        c.passed_on();
        assert!(matches!(c.answer("226"), Answer::TransferFinal));
        assert!(matches!(c.answer("226"), Answer::Command));
        assert!(c.is_quiet());
    }
}
