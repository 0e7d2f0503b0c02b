//! Which account a TLS session belongs to, so that a data connection is
//! bound to the user rather than to one control connection.
//!
//! Every control connection gets a [`SessionId`]; the tickets and cached
//! sessions it issues carry that id inside them (tickets are encrypted and
//! authenticated by the server's ticket key, cached sessions never leave
//! the server), and [`SessionOwners`] maps the id to the account once the
//! connection logs in. A data connection is accepted when it resumes a
//! session whose id maps to the same account as the connection that opened
//! the passive port ([`Resumption::same_user`]): rclone runs several control
//! connections of one user with one shared client session cache, and its
//! data connection often resumes another of them. Someone else's
//! connection (another account, or a session the server never issued to a
//! logged-in connection) resumes nothing that maps to the owner: `522`.
//!
//! A data connection only gives the client a ticket when it resumed a
//! session of the port's user: a full handshake on someone's passive port
//! would otherwise hand the intruder a ticket of theirs.
//!
//! Ids of closed connections are kept (at most [`RETIRED_SESSIONS`], oldest
//! dropped first) so that tickets stay good after the connection that
//! issued them closed, as clients that close idle connections (rclone)
//! need; live connections' ids are never dropped.

use crate::data_port::DataPort;
use rustls::server::{ProducesTickets, StoresServerSessions};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Closed connections whose tickets still name their account.
pub const RETIRED_SESSIONS: usize = 4096;
/// TLS 1.2 sessions cached by id, for all connections together.
pub const CACHED_SESSIONS: usize = 8192;

/// Bytes of the id in front of every ticket and cached session.
const ID_LEN: usize = 8;

/// One control connection's TLS sessions; retired when dropped.
#[derive(Debug)]
pub struct SessionId {
    id: u64,
    owners: Arc<SessionOwners>,
}

impl SessionId {
    /// The control connection logged in as `user`.
    pub fn logged_in(&self, user: &str) {
        self.owners
            .lock()
            .live
            .insert(self.id, Some(user.to_owned()));
        self.owners.changed.send_modify(|n| *n += 1);
    }

    /// The account this connection logged in as.
    pub fn user(&self) -> Option<String> {
        self.owners.user(self.id)
    }
}

impl Drop for SessionId {
    fn drop(&mut self) {
        self.owners.retire(self.id);
    }
}

/// Ids and the accounts they logged in as.
#[derive(Debug, Default)]
pub struct SessionOwners {
    next: AtomicU64,
    inner: Mutex<Owners>,
    /// Bumped when a connection logs in or closes.
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Owners {
    /// Open control connections (not logged in yet: `None`).
    live: HashMap<u64, Option<String>>,
    /// Closed ones that had logged in, oldest first.
    retired: VecDeque<u64>,
    retired_users: HashMap<u64, String>,
}

impl SessionOwners {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Owners> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new control connection's id.
    pub fn open(self: &Arc<Self>) -> SessionId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().live.insert(id, None);
        SessionId {
            id,
            owners: self.clone(),
        }
    }

    fn user(&self, id: u64) -> Option<String> {
        match self.owner(id) {
            Owner::User(user) => Some(user),
            Owner::NotYet | Owner::Nobody => None,
        }
    }

    fn owner(&self, id: u64) -> Owner {
        let owners = self.lock();
        match owners.live.get(&id) {
            Some(Some(user)) => Owner::User(user.clone()),
            Some(None) => Owner::NotYet,
            None => owners
                .retired_users
                .get(&id)
                .map_or(Owner::Nobody, |user| Owner::User(user.clone())),
        }
    }

    fn retire(&self, id: u64) {
        {
            let mut owners = self.lock();
            if let Some(Some(user)) = owners.live.remove(&id) {
                owners.retired.push_back(id);
                owners.retired_users.insert(id, user);
                while owners.retired.len() > RETIRED_SESSIONS {
                    if let Some(old) = owners.retired.pop_front() {
                        owners.retired_users.remove(&old);
                    }
                }
            }
        }
        // After the change: whoever waits on it sees where the id went.
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Whose a session id is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    User(String),
    /// A connection still logging in.
    NotYet,
    /// Unknown, or closed without logging in.
    Nobody,
}

fn tag(id: u64, plain: &[u8]) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(ID_LEN + plain.len());
    tagged.extend_from_slice(&id.to_be_bytes());
    tagged.extend_from_slice(plain);
    tagged
}

fn untag(tagged: &[u8]) -> Option<(u64, Vec<u8>)> {
    let (id, plain) = tagged.split_at_checked(ID_LEN)?;
    Some((u64::from_be_bytes(id.try_into().ok()?), plain.to_vec()))
}

/// What one data connection's handshake resumed, and whether that binds it
/// to the port's user.
#[derive(Debug)]
pub struct Resumption {
    owners: Arc<SessionOwners>,
    /// The connection that opened the passive port.
    session: u64,
    /// The id found in the ticket or cached session the client offered.
    from: Mutex<Option<u64>>,
}

impl Resumption {
    fn record(&self, id: u64) {
        *self.from.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
    }

    /// The session the client offered was issued to a connection logged in
    /// as the same account as the port's.
    pub fn same_user(&self) -> bool {
        self.binding() == Some(true)
    }

    /// `same_user`, or `None` while the connection that issued the session
    /// is still logging in.
    fn binding(&self) -> Option<bool> {
        let from = *self.from.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(from) = from else {
            return Some(false);
        };
        let Some(ours) = self.owners.user(self.session) else {
            return Some(false);
        };
        match self.owners.owner(from) {
            Owner::User(theirs) => Some(theirs == ours),
            Owner::NotYet => None,
            Owner::Nobody => Some(false),
        }
    }

    /// For the log: the id offered, and whose it is.
    pub fn describe(&self) -> String {
        let from = *self.from.lock().unwrap_or_else(PoisonError::into_inner);
        match from {
            Some(id) => format!(
                "session {id} of {:?}, port of session {}",
                self.owners.owner(id),
                self.session
            ),
            None => "no session".to_owned(),
        }
    }

    /// [`Resumption::same_user`], waiting up to `patience` for the issuing
    /// connection to finish logging in: a client with one session cache
    /// for several connections (rclone) may resume the session of one that
    /// has just done its TLS handshake and is still sending `USER`/`PASS`.
    pub async fn same_user_once_known(&self, patience: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        let mut changes = self.owners.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(same) = self.binding() {
                return same;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}

/// Who the tickets and cached sessions of one configuration are for.
#[derive(Debug, Clone)]
enum Issuer {
    /// A control connection: its own id.
    Control(u64),
    /// A data connection: the port owner's id, if the client resumed a
    /// session of the same user (and the port gives tickets now).
    Data {
        resumption: Arc<Resumption>,
        port: Arc<DataPort>,
    },
}

impl Issuer {
    fn id_to_issue(&self) -> Option<u64> {
        match self {
            Self::Control(id) => Some(*id),
            Self::Data { resumption, .. } => resumption.same_user().then_some(resumption.session),
        }
    }

    fn gives_ticket(&self) -> Option<u64> {
        match self {
            Self::Data { port, .. } if !port.gives_ticket() => None,
            _ => self.id_to_issue(),
        }
    }

    fn seen(&self, id: u64) {
        if let Self::Data { resumption, .. } = self {
            resumption.record(id);
        }
    }
}

/// The server's ticket key, with the issuer's id inside every ticket.
#[derive(Debug)]
pub struct OwnedTickets {
    key: Arc<dyn ProducesTickets>,
    issuer: Issuer,
}

impl ProducesTickets for OwnedTickets {
    fn enabled(&self) -> bool {
        self.key.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.key.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        // rustls sends no ticket when this gives none.
        let id = self.issuer.gives_ticket()?;
        self.key.encrypt(&tag(id, plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (id, plain) = untag(&self.key.decrypt(cipher)?)?;
        self.issuer.seen(id);
        Some(plain)
    }
}

/// The server's cache of TLS 1.2 sessions (by session id), with the
/// issuer's id in front of every value.
#[derive(Debug)]
pub struct OwnedSessions {
    cache: Arc<SessionCache>,
    issuer: Issuer,
}

impl OwnedSessions {
    fn found(&self, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let (id, plain) = untag(&value?)?;
        self.issuer.seen(id);
        Some(plain)
    }
}

impl StoresServerSessions for OwnedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        match self.issuer.id_to_issue() {
            Some(id) => self.cache.put(key, tag(id, &value)),
            None => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.found(self.cache.get(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.found(self.cache.take(key))
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// What all connections' TLS sessions share: the ticket key, the session
/// cache and the owners.
#[derive(Debug, Clone)]
pub struct SharedSessions {
    pub key: Arc<dyn ProducesTickets>,
    pub cache: Arc<SessionCache>,
    pub owners: Arc<SessionOwners>,
}

impl SharedSessions {
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(Self {
            key: crate::tls::ticketer()?,
            cache: SessionCache::new(CACHED_SESSIONS),
            owners: SessionOwners::new(),
        })
    }

    /// Ticket key and session cache of a control connection.
    pub fn control(
        &self,
        id: &SessionId,
    ) -> (Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>) {
        self.issued_by(Issuer::Control(id.id))
    }

    /// Ticket key and session cache of one data connection on `port`,
    /// opened by `id`'s control connection, and what its handshake resumes.
    #[allow(clippy::type_complexity)]
    pub fn data(
        &self,
        id: &SessionId,
        port: Arc<DataPort>,
    ) -> (
        Arc<dyn ProducesTickets>,
        Arc<dyn StoresServerSessions>,
        Arc<Resumption>,
    ) {
        let resumption = Arc::new(Resumption {
            owners: self.owners.clone(),
            session: id.id,
            from: Mutex::new(None),
        });
        let (tickets, sessions) = self.issued_by(Issuer::Data {
            resumption: resumption.clone(),
            port,
        });
        (tickets, sessions, resumption)
    }

    fn issued_by(
        &self,
        issuer: Issuer,
    ) -> (Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>) {
        (
            Arc::new(OwnedTickets {
                key: self.key.clone(),
                issuer: issuer.clone(),
            }),
            Arc::new(OwnedSessions {
                cache: self.cache.clone(),
                issuer,
            }),
        )
    }
}

/// Server-side session store whose `take` leaves the session in place.
///
/// rustls' own cache removes a session when it is resumed, so only the first
/// data connection could resume it; FTP clients resume the same session for
/// every transfer. Oldest entries go first when full.
#[derive(Debug)]
pub struct SessionCache {
    capacity: usize,
    inner: Mutex<Sessions>,
}

/// Sessions by key, and keys oldest first.
type Sessions = (HashMap<Vec<u8>, Vec<u8>>, VecDeque<Vec<u8>>);

impl SessionCache {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        })
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .get(key)
            .cloned()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn session_cache_keeps_taken_sessions_and_is_bounded() {
        let cache = SessionCache::new(2);
        cache.put(b"a".to_vec(), b"1".to_vec());
        assert_eq!(cache.take(b"a"), Some(b"1".to_vec()));
        assert_eq!(cache.take(b"a"), Some(b"1".to_vec()));
        cache.put(b"b".to_vec(), b"2".to_vec());
        cache.put(b"c".to_vec(), b"3".to_vec());
        assert_eq!(cache.get(b"a"), None);
        assert_eq!(cache.get(b"c"), Some(b"3".to_vec()));
    }

    #[test]
    fn a_data_connection_resuming_a_session_of_the_same_user_is_bound() {
        let shared = SharedSessions::new().unwrap();
        let (alice_1, alice_2, bob) = (
            shared.owners.open(),
            shared.owners.open(),
            shared.owners.open(),
        );
        let (tickets_1, _) = shared.control(&alice_1);
        let (tickets_bob, _) = shared.control(&bob);
        let ticket_1 = tickets_1.encrypt(b"session of alice 1").unwrap();
        let ticket_bob = tickets_bob.encrypt(b"session of bob").unwrap();
        alice_1.logged_in("alice");
        alice_2.logged_in("alice");
        bob.logged_in("bob");
        // alice's second connection opened the port.
        let resumed = |ticket: &[u8]| {
            let (tickets, _, resumption) = shared.data(&alice_2, DataPort::new());
            let plain = tickets.decrypt(ticket);
            (
                plain,
                resumption.same_user(),
                tickets.encrypt(b"new").is_some(),
            )
        };
        assert_eq!(
            resumed(&ticket_1),
            (Some(b"session of alice 1".to_vec()), true, true)
        );
        // bob's session decrypts, but binds nothing and earns no ticket.
        assert_eq!(
            resumed(&ticket_bob),
            (Some(b"session of bob".to_vec()), false, false)
        );
        // No resumption at all: no ticket either.
        let (tickets, _, resumption) = shared.data(&alice_2, DataPort::new());
        assert!(!resumption.same_user() && tickets.encrypt(b"new").is_none());
        // Tickets stay good after the issuing connection closed.
        drop(alice_1);
        assert!(resumed(&ticket_1).1);
    }

    #[tokio::test]
    async fn a_session_of_a_connection_still_logging_in_binds_once_it_has() {
        let shared = SharedSessions::new().unwrap();
        let (port_owner, newcomer, stranger) = (
            shared.owners.open(),
            shared.owners.open(),
            shared.owners.open(),
        );
        port_owner.logged_in("alice");
        let (tickets_new, _) = shared.control(&newcomer);
        let (tickets_stranger, _) = shared.control(&stranger);
        let patience = std::time::Duration::from_secs(5);
        let offer = |ticket: &[u8]| {
            let (tickets, _, resumption) = shared.data(&port_owner, DataPort::new());
            tickets.decrypt(ticket).unwrap();
            resumption
        };
        let resumption = offer(&tickets_new.encrypt(b"s").unwrap());
        assert!(!resumption.same_user(), "not known yet");
        let waiting = resumption.same_user_once_known(patience);
        tokio::pin!(waiting);
        // Polled once: it found the issuer still logging in and waits.
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, &mut waiting)
                .await
                .is_err()
        );
        newcomer.logged_in("alice");
        assert!(waiting.await);
        // One that closes without logging in binds nothing, at once.
        let resumption = offer(&tickets_stranger.encrypt(b"s").unwrap());
        let started = std::time::Instant::now();
        drop(stranger);
        assert!(!resumption.same_user_once_known(patience).await);
        assert!(started.elapsed() < patience);
    }

    #[test]
    fn cached_sessions_carry_their_owner_and_strangers_store_nothing() {
        let shared = SharedSessions::new().unwrap();
        let (alice, bob) = (shared.owners.open(), shared.owners.open());
        alice.logged_in("alice");
        bob.logged_in("bob");
        let (_, sessions) = shared.control(&alice);
        assert!(sessions.put(b"id-a".to_vec(), b"value".to_vec()));
        let (_, data_sessions, resumption) = shared.data(&bob, DataPort::new());
        assert!(!data_sessions.put(b"id-b".to_vec(), b"x".to_vec()));
        assert_eq!(data_sessions.get(b"id-a"), Some(b"value".to_vec()));
        assert!(!resumption.same_user());
    }

    #[test]
    fn retired_ids_are_bounded_and_live_ones_kept() {
        let owners = SessionOwners::new();
        let live = owners.open();
        live.logged_in("alice");
        let first = owners.open();
        first.logged_in("alice");
        let first_id = first.id;
        drop(first);
        assert_eq!(owners.user(first_id).as_deref(), Some("alice"));
        for _ in 0..RETIRED_SESSIONS {
            let id = owners.open();
            id.logged_in("bob");
        }
        assert_eq!(owners.user(first_id), None, "the oldest retired id is gone");
        assert_eq!(live.user().as_deref(), Some("alice"));
        let owners = owners.lock();
        assert_eq!(owners.retired.len(), RETIRED_SESSIONS);
        assert_eq!(owners.retired_users.len(), RETIRED_SESSIONS);
    }
}
