//! Password checks with a failed-login policy: every failure is answered
//! after a delay, and a client IP with too many failures in a row is locked
//! out for a while (even a right password fails then).
//!
//! libunftp has a failed-logins policy of its own, but it lives in its
//! listener; ftpsd accepts connections itself (to enforce `max_sessions`), so
//! the policy is kept here, shared by all sessions.

use crate::metrics::Metrics;
use crate::users::{PasswordHash, Users};
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};

/// How failures are delayed and locked out.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub failure_delay: Duration,
    pub max_failures: u32,
    pub lockout: Duration,
    /// How long a verified password is remembered (zero: never).
    pub cache: Duration,
}

#[derive(Debug, Default)]
struct Failures {
    in_a_row: u32,
    locked_until: Option<Instant>,
}

/// Users, policy and failure counts shared by all sessions.
#[derive(Debug)]
pub struct LoginGuard {
    users: Arc<Users>,
    policy: LoginPolicy,
    metrics: Metrics,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    // Checked for unknown names so that they cost as much time as known ones.
    decoy: PasswordHash,
    /// Verified logins: name -> (HMAC of the password under a per-process
    /// random key, when verified). Lets a client that opens many sessions
    /// skip the deliberately slow PBKDF2 check; wrong passwords never hit it.
    verified: Mutex<HashMap<String, (ring::hmac::Tag, Instant)>>,
    verified_key: ring::hmac::Key,
}

enum Verdict {
    LockedOut,
    Unknown,
    Bad,
    Good,
}

impl LoginGuard {
    pub fn new(
        users: Arc<Users>,
        policy: LoginPolicy,
        metrics: Metrics,
    ) -> Result<Self, crate::users::UsersError> {
        let decoy = PasswordHash::create(
            "decoy",
            NonZeroU32::new(crate::users::DEFAULT_ITERATIONS).unwrap_or(NonZeroU32::MIN),
        )?;
        let verified_key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .map_err(|_| crate::users::UsersError::Random)?;
        Ok(Self {
            users,
            policy,
            metrics,
            failures: Mutex::new(HashMap::new()),
            decoy,
            verified: Mutex::new(HashMap::new()),
            verified_key,
        })
    }

    fn cached(&self, username: &str, password: &str) -> bool {
        if self.policy.cache.is_zero() {
            return false;
        }
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified.get(username).is_some_and(|(tag, at)| {
            at.elapsed() < self.policy.cache
                && ring::hmac::verify(&self.verified_key, password.as_bytes(), tag.as_ref()).is_ok()
        })
    }

    fn remember(&self, username: &str, password: &str) {
        if self.policy.cache.is_zero() {
            return;
        }
        let tag = ring::hmac::sign(&self.verified_key, password.as_bytes());
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One entry per user of the users file at most; no eviction needed beyond expiry.
        verified.insert(username.to_owned(), (tag, Instant::now()));
    }

    fn locked(&self, ip: IpAddr, now: Instant) -> bool {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failures.get(&ip).and_then(|f| f.locked_until) {
            Some(until) if until > now => true,
            Some(_) => {
                failures.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Records a failure; returns true when this one started a lockout.
    fn record_failure(&self, ip: IpAddr, now: Instant) -> bool {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bound the table: forget clients that are not locked out when it grows large.
        if failures.len() > 10_000 {
            failures.retain(|_, f| f.locked_until.is_some_and(|t| t > now));
        }
        let entry = failures.entry(ip).or_default();
        entry.in_a_row += 1;
        if entry.in_a_row >= self.policy.max_failures && entry.locked_until.is_none() {
            entry.locked_until = Some(now + self.policy.lockout);
            return true;
        }
        false
    }

    fn record_success(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ip);
    }
}

impl LoginGuard {
    /// Checks a login from client address `ip`.
    pub async fn check(
        &self,
        ip: IpAddr,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let verdict = if self.locked(ip, Instant::now()) {
            Verdict::LockedOut
        } else if self.cached(username, creds.password.as_deref().unwrap_or_default()) {
            Verdict::Good
        } else {
            let password = creds.password.clone().unwrap_or_default();
            let known = self.users.get(username).cloned();
            let decoy = self.decoy.clone();
            // PBKDF2 is CPU work: keep it off the async worker threads.
            tokio::task::spawn_blocking(move || match known {
                Some(hash) if hash.verify(&password) => Verdict::Good,
                Some(_) => Verdict::Bad,
                None => {
                    decoy.verify(&password);
                    Verdict::Unknown
                }
            })
            .await
            .map_err(|e| AuthenticationError::with_source("password check failed", e))?
        };
        let outcome = match verdict {
            Verdict::Good => {
                self.remember(username, creds.password.as_deref().unwrap_or_default());
                self.record_success(ip);
                self.metrics.login("ok");
                tracing::info!(user = username, client = %ip, "login");
                return Ok(Principal {
                    username: username.to_owned(),
                });
            }
            Verdict::LockedOut => {
                self.metrics.login("locked_out");
                tracing::warn!(user = username, client = %ip, "login refused: client locked out");
                AuthenticationError::IpDisallowed
            }
            Verdict::Bad | Verdict::Unknown => {
                self.metrics.login("failed");
                let unknown = matches!(verdict, Verdict::Unknown);
                tracing::warn!(user = username, client = %ip, unknown_user = unknown, "login failed");
                if self.record_failure(ip, Instant::now()) {
                    self.metrics.lockout();
                    tracing::warn!(client = %ip, seconds = self.policy.lockout.as_secs(), "client locked out after repeated login failures");
                }
                // BadPassword for both, so that a client cannot tell names apart.
                AuthenticationError::BadPassword
            }
        };
        tokio::time::sleep(self.policy.failure_delay).await;
        Err(outcome)
    }
}

/// The `Authenticator` of one session: libunftp sees the session through a
/// loopback relay, so the client's real address is carried here.
#[derive(Debug)]
pub struct SessionLogin {
    pub guard: Arc<LoginGuard>,
    pub client_ip: IpAddr,
}

#[async_trait]
impl Authenticator for SessionLogin {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        self.guard.check(self.client_ip, username, creds).await
    }

    fn name(&self) -> &str {
        "ftpsd-users-file"
    }
}
