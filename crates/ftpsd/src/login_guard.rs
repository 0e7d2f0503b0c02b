//! Password checks with a failed-login policy that slows brute force down
//! without letting anyone lock out somebody else.
//!
//! - Per account name (known or not): each failure in a row doubles the
//!   delay before the answer (`failure_delay`, up to 16 times it), and
//!   `max_failures` in a row lock the account out for `lockout`, doubled for
//!   each lockout in a row (up to `max_lockout`). A locked-out account fails
//!   every login, its right password included; no other account is touched.
//! - Per client address, only with `per_source`: the same counting locks the
//!   address out. Off behind a load balancer that rewrites sources, where
//!   every client has the node's address (the cluster's config says so).
//! - At most `concurrent_checks` PBKDF2 verifications run at once; the rest
//!   wait, so failed logins cannot take more than that much CPU.
//!
//! libunftp has a failed-logins policy of its own, but it lives in its
//! listener; ftpsd accepts connections itself, so the policy is kept here,
//! shared by all sessions.

use crate::metrics::Metrics;
use crate::users::{PasswordHash, Users};
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};

/// The delay doubles with each failure in a row, up to this many times the base.
const MAX_DELAY_FACTOR: u32 = 16;
/// Failure records kept; past this, those not locked out are forgotten.
const MAX_RECORDS: usize = 10_000;

/// How failures are delayed and locked out.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub failure_delay: Duration,
    pub max_failures: u32,
    pub lockout: Duration,
    pub max_lockout: Duration,
    pub per_source: bool,
    pub concurrent_checks: usize,
    /// How long a verified password is remembered (zero: never).
    pub cache: Duration,
}

impl LoginPolicy {
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            failure_delay: config.failure_delay(),
            max_failures: config.login.max_failures,
            lockout: config.lockout(),
            max_lockout: Duration::from_secs(config.login.max_lockout_seconds),
            per_source: config.login.per_source,
            concurrent_checks: config.concurrent_checks(),
            cache: Duration::from_secs(config.login.verified_cache_seconds),
        }
    }
}

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Source(IpAddr),
}

#[derive(Debug, Default)]
struct Failures {
    in_a_row: u32,
    /// Lockouts in a row: each one lasts twice as long as the one before.
    lockouts: u32,
    locked_until: Option<Instant>,
}

/// Users, policy and failure counts shared by all sessions.
#[derive(Debug)]
pub struct LoginGuard {
    users: Arc<Users>,
    policy: LoginPolicy,
    metrics: Metrics,
    failures: Mutex<HashMap<Key, Failures>>,
    checks: Semaphore,
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
            checks: Semaphore::new(policy.concurrent_checks.max(1)),
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

    fn keys(&self, ip: IpAddr, username: &str) -> Vec<Key> {
        let mut keys = vec![Key::Account(username.to_owned())];
        if self.policy.per_source {
            keys.push(Key::Source(ip));
        }
        keys
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Failures>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first of `keys` that is locked out now, if any.
    fn locked(&self, keys: &[Key], now: Instant) -> Option<Key> {
        let mut failures = self.table();
        keys.iter()
            .find(|key| {
                let Some(f) = failures.get_mut(*key) else {
                    return false;
                };
                match f.locked_until {
                    Some(until) if until > now => true,
                    Some(_) => {
                        // Served: counting starts again, the next lockout is longer.
                        f.locked_until = None;
                        f.in_a_row = 0;
                        false
                    }
                    None => false,
                }
            })
            .cloned()
    }

    /// Records a failure against each key; returns how long to delay the
    /// answer and the lockouts this failure started.
    fn record_failure(&self, keys: &[Key], now: Instant) -> (Duration, Vec<(Key, Duration)>) {
        let mut failures = self.table();
        if failures.len() > MAX_RECORDS {
            failures.retain(|_, f| f.locked_until.is_some_and(|t| t > now));
        }
        let mut factor = 1;
        let mut started = Vec::new();
        for key in keys {
            let f = failures.entry(key.clone()).or_default();
            f.in_a_row += 1;
            if let Key::Account(_) = key {
                factor = 1u32 << (f.in_a_row - 1).min(MAX_DELAY_FACTOR.ilog2());
            }
            if f.in_a_row >= self.policy.max_failures {
                let lockout = self
                    .policy
                    .lockout
                    .saturating_mul(1 << f.lockouts.min(20))
                    .min(self.policy.max_lockout);
                f.lockouts += 1;
                f.in_a_row = 0;
                f.locked_until = Some(now + lockout);
                started.push((key.clone(), lockout));
            }
        }
        (self.policy.failure_delay.saturating_mul(factor), started)
    }

    fn record_success(&self, keys: &[Key]) {
        let mut failures = self.table();
        for key in keys {
            failures.remove(key);
        }
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
        let keys = self.keys(ip, username);
        let locked = self.locked(&keys, Instant::now());
        let verdict = if locked.is_some() {
            Verdict::LockedOut
        } else if self.cached(username, creds.password.as_deref().unwrap_or_default()) {
            Verdict::Good
        } else {
            let password = creds.password.clone().unwrap_or_default();
            let known = self.users.get(username).cloned();
            let decoy = self.decoy.clone();
            let _turn = match self.checks.try_acquire() {
                Ok(turn) => turn,
                Err(_) => {
                    self.metrics.check_queued();
                    self.checks
                        .acquire()
                        .await
                        .map_err(|e| AuthenticationError::with_source("password check failed", e))?
                }
            };
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
        let (outcome, delay) = match verdict {
            Verdict::Good => {
                self.remember(username, creds.password.as_deref().unwrap_or_default());
                self.record_success(&keys);
                self.metrics.login("ok");
                tracing::info!(user = username, client = %ip, "login");
                return Ok(Principal {
                    username: username.to_owned(),
                });
            }
            Verdict::LockedOut => {
                self.metrics.login("locked_out");
                match locked {
                    Some(Key::Source(_)) => {
                        tracing::warn!(user = username, client = %ip, "login refused: client address locked out")
                    }
                    _ => {
                        tracing::warn!(user = username, client = %ip, "login refused: account locked out")
                    }
                }
                (AuthenticationError::BadPassword, self.policy.failure_delay)
            }
            Verdict::Bad | Verdict::Unknown => {
                self.metrics.login("failed");
                let unknown = matches!(verdict, Verdict::Unknown);
                tracing::warn!(user = username, client = %ip, unknown_user = unknown, "login failed");
                let (delay, lockouts) = self.record_failure(&keys, Instant::now());
                for (key, lockout) in lockouts {
                    self.metrics.lockout();
                    match key {
                        Key::Account(name) => tracing::warn!(
                            user = name,
                            seconds = lockout.as_secs(),
                            "account locked out after repeated login failures"
                        ),
                        Key::Source(addr) => {
                            tracing::warn!(client = %addr, seconds = lockout.as_secs(), "client address locked out after repeated login failures")
                        }
                    }
                }
                // BadPassword for all three, so that a client cannot tell
                // names apart, nor a lockout from a wrong password.
                (AuthenticationError::BadPassword, delay)
            }
        };
        tokio::time::sleep(delay).await;
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
