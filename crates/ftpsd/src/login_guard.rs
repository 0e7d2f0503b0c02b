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
//! - A password verified is remembered for `cache` (an HMAC under a
//!   per-process key), and logins of one account with the same password
//!   that arrive while its check runs or waits for its turn share that one
//!   check instead of queueing their own: 20 clients logging in as one user
//!   at once cost one PBKDF2, not 20. With `cache` zero every login runs
//!   its own check.
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
use tokio::sync::{Semaphore, watch};
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
    /// Checks under way (or waiting for their turn), by name and HMAC of
    /// the password: a login with the same name and password waits for that
    /// check's verdict instead of running its own.
    in_flight: Mutex<HashMap<CheckKey, watch::Receiver<Option<Verdict>>>>,
}

/// A login's name and the HMAC of its password.
type CheckKey = (String, Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            in_flight: Mutex::new(HashMap::new()),
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
    /// The verdict on `password` for `username`: from the check of the same
    /// name and password already under way, if there is one (with the
    /// cache on), else from a check of its own.
    async fn verify_shared(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Verdict, AuthenticationError> {
        if self.policy.cache.is_zero() {
            return self.verify(username, password).await;
        }
        let key = (
            username.to_owned(),
            ring::hmac::sign(&self.verified_key, password.as_bytes())
                .as_ref()
                .to_vec(),
        );
        loop {
            let running = {
                let mut in_flight = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match in_flight.get(&key) {
                    Some(running) => Ok(running.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        in_flight.insert(key.clone(), rx);
                        Err(tx)
                    }
                }
            };
            let mut running = match running {
                Ok(running) => running,
                Err(tx) => {
                    let _entry = InFlight {
                        guard: self,
                        key: &key,
                    };
                    let verdict = self.verify(username, password).await;
                    if let Ok(verdict) = &verdict {
                        if *verdict == Verdict::Good {
                            // Before the entry goes: no login falls between the two.
                            self.remember(username, password);
                        }
                        tx.send_replace(Some(*verdict));
                    }
                    return verdict;
                }
            };
            if let Ok(verdict) = running.wait_for(Option::is_some).await
                && let Some(verdict) = *verdict
            {
                self.metrics.check_shared();
                return Ok(verdict);
            }
            // The check it waited for ended without a verdict (its login
            // was dropped): try again, as the one that checks if need be.
        }
    }

    /// One PBKDF2 verification, in its turn (at most `concurrent_checks`
    /// at once); a password verified meanwhile by another login is taken
    /// from the cache instead.
    async fn verify(&self, username: &str, password: &str) -> Result<Verdict, AuthenticationError> {
        let _turn = match self.checks.try_acquire() {
            Ok(turn) => turn,
            Err(_) => {
                self.metrics.check_queued();
                let turn =
                    self.checks.acquire().await.map_err(|e| {
                        AuthenticationError::with_source("password check failed", e)
                    })?;
                if self.cached(username, password) {
                    return Ok(Verdict::Good);
                }
                turn
            }
        };
        let password = password.to_owned();
        let known = self.users.get(username).cloned();
        let decoy = self.decoy.clone();
        self.metrics.check_run();
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
        .map_err(|e| AuthenticationError::with_source("password check failed", e))
    }
}

/// The entry of a check under way, removed when its leader is done (or dropped).
struct InFlight<'a> {
    guard: &'a LoginGuard,
    key: &'a CheckKey,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.guard
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(self.key);
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
            self.verify_shared(username, creds.password.as_deref().unwrap_or_default())
                .await?
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn guard(cache: Duration, concurrent_checks: usize) -> Arc<LoginGuard> {
        let hash = PasswordHash::create("right", NonZeroU32::new(20_000).unwrap()).unwrap();
        let users = Users::parse(&format!("alice:{hash}\n")).unwrap();
        let policy = LoginPolicy {
            failure_delay: Duration::from_millis(1),
            max_failures: 100,
            lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(1),
            per_source: false,
            concurrent_checks,
            cache,
        };
        Arc::new(LoginGuard::new(Arc::new(users), policy, Metrics::for_tests()).unwrap())
    }

    async fn logins(guard: &Arc<LoginGuard>, password: &str, n: usize) -> Vec<bool> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (guard, password) = (guard.clone(), password.to_owned());
            set.spawn(async move {
                let creds = Credentials::from(password.as_str());
                guard
                    .check(IpAddr::from([127, 0, 0, 1]), "alice", &creds)
                    .await
                    .is_ok()
            });
        }
        set.join_all().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_logins_of_one_account_share_one_check() {
        let guard = guard(Duration::from_secs(300), 2);
        assert!(logins(&guard, "right", 20).await.iter().all(|ok| *ok));
        assert_eq!(guard.metrics.checks_run(), 1);
        // A wrong password shares nothing with the right one's verdict.
        assert!(logins(&guard, "wrong", 3).await.iter().all(|ok| !ok));
        assert!(guard.metrics.checks_run() >= 2);
        // Without the cache, each login checks for itself.
        let guard = self::guard(Duration::ZERO, 2);
        assert!(logins(&guard, "right", 4).await.iter().all(|ok| *ok));
        assert_eq!(guard.metrics.checks_run(), 4);
    }
}
