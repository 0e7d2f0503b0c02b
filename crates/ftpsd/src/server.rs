//! The accept loop: admits each control connection ([`crate::admission`]:
//! bounded while not logged in, `max_sessions` once logged in) and starts a
//! libunftp session for it behind the TLS-terminating relay of
//! [`crate::control_channel`], with its own TLS session id
//! ([`crate::tls::SessionTls`]) and data channels ([`crate::data_channel`]).

use crate::accounts::{Account, AccountProvider};
use crate::admission::{Admission, Gate};
use crate::config::Config;
use crate::control_channel::{Loopback, Session};
use crate::conversation::Conversation;
use crate::data_channel::{DataChannels, DataPolicy, PassiveBinder};
use crate::login_guard::{LoginGuard, LoginPolicy, SessionLogin};
use crate::metrics::Metrics;
use crate::storage::{DataLink, HomeStorage, SessionHome};
use crate::transfer_log::TransferLog;
use crate::users::Users;
use libunftp::ServerBuilder;
use libunftp::options::{FtpsRequired, PassiveHost};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Users(#[from] crate::users::UsersError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("metrics registry")]
    Metrics(#[from] prometheus::Error),
    #[error("data root {path}")]
    DataRoot {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Everything a session needs, built once at start.
#[derive(Debug)]
pub struct Ftpsd {
    config: Config,
    guard: Arc<LoginGuard>,
    provider: Arc<AccountProvider>,
    tls: crate::tls::TlsConfigs,
    passive_address: Option<std::net::Ipv4Addr>,
    greeting: &'static str,
    metrics: Metrics,
}

impl Ftpsd {
    /// Checks the configuration and loads the users file, certificate and key.
    pub fn prepare(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let users = Arc::new(Users::load(&config.users_file)?);
        if users.is_empty() {
            tracing::warn!(file = %config.users_file.display(), "users file lists no user; nobody can log in");
        }
        let tls = crate::tls::server_configs(&config.tls)?;
        let meta = std::fs::metadata(&config.data_root).map_err(|source| StartError::DataRoot {
            path: config.data_root.display().to_string(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(StartError::DataRoot {
                path: config.data_root.display().to_string(),
                source: std::io::Error::other("not a directory"),
            });
        }
        crate::storage::prepare_staging(&config.data_root).map_err(|source| {
            StartError::DataRoot {
                path: config
                    .data_root
                    .join(crate::storage::STAGING)
                    .display()
                    .to_string(),
                source,
            }
        })?;
        let passive_address = config.passive_address()?;
        let metrics = Metrics::register()?;
        let policy = LoginPolicy::from_config(&config);
        let guard = Arc::new(LoginGuard::new(users, policy, metrics.clone())?);
        let provider = Arc::new(AccountProvider::new(config.data_root.clone()));
        // libunftp wants a 'static greeting; it lives as long as the process anyway.
        let greeting: &'static str = Box::leak(config.greeting.clone().into_boxed_str());
        Ok(Self {
            config,
            guard,
            provider,
            tls,
            passive_address,
            greeting,
            metrics,
        })
    }

    /// Binds both ports and serves until SIGTERM or SIGINT.
    pub async fn run(self) -> Result<(), StartError> {
        let bind_err = |addr: std::net::SocketAddr| {
            move |source| StartError::Bind {
                addr: addr.to_string(),
                source,
            }
        };
        let control = TcpListener::bind(self.config.listen)
            .await
            .map_err(bind_err(self.config.listen))?;
        let metrics_listener = crate::metrics::bind(self.config.metrics_listen)
            .await
            .map_err(bind_err(self.config.metrics_listen))?;
        tracing::info!(
            control = %self.config.listen,
            metrics = %self.config.metrics_listen,
            passive = format!("{}-{}", self.config.passive.port_min, self.config.passive.port_max),
            max_sessions = self.config.max_sessions,
            "listening"
        );
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(metrics_listener).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });

        let loopback = Loopback::start().await.map_err(|source| StartError::Bind {
            addr: "127.0.0.1:0 (internal)".into(),
            source,
        })?;
        let this = Arc::new(self);
        let admission = Admission::new(this.config.max_unauthenticated, this.config.max_sessions);
        let stop = daemon::stop::requested().map_err(|source| StartError::Bind {
            addr: "SIGTERM/SIGINT handlers".into(),
            source,
        })?;
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = control.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                signal = &mut stop => {
                    tracing::info!(signal, "stopping");
                    break;
                }
            };
            let (gate, evicted_one) = admission.admit();
            if evicted_one {
                this.metrics.session_refused();
                tracing::warn!(
                    max_unauthenticated = this.config.max_unauthenticated,
                    "too many connections not logged in: the oldest is closed"
                );
            }
            let this = this.clone();
            let loopback = loopback.clone();
            tokio::spawn(async move {
                this.metrics.session_started();
                tracing::debug!(client = %peer, "session start");
                if let Err(e) = this.session(stream, peer, &loopback, gate).await {
                    tracing::info!(client = %peer, error = %e, "session ended with an error");
                }
                this.metrics.session_ended();
            });
        }
        tracing::info!("shutting down");
        Ok(())
    }

    /// Serves one client: libunftp on one end of a loopback pair, the relay
    /// between it and the client.
    async fn session(
        &self,
        client: TcpStream,
        peer: std::net::SocketAddr,
        loopback: &Loopback,
        gate: Gate,
    ) -> std::io::Result<()> {
        let _ = client.set_nodelay(true);
        let local = client.local_addr()?;
        let (ours, theirs) = loopback.pair().await?;
        let local_ip = match local.ip() {
            std::net::IpAddr::V6(v6) => {
                v6.to_ipv4_mapped().map_or(local.ip(), std::net::IpAddr::V4)
            }
            v4 => v4,
        };
        let tls = self.tls.for_session();
        let tls_id = tls.id.clone();
        let home = Arc::new(SessionHome::default());
        let policy = DataPolicy {
            require_session_reuse: self.config.tls.require_session_reuse,
            connect_timeout: std::time::Duration::from_secs(
                self.config.passive.connect_timeout_seconds,
            ),
            handshake_timeout: std::time::Duration::from_secs(
                self.config.passive.handshake_timeout_seconds,
            ),
        };
        let control_tls = tls.control.clone();
        let channels = DataChannels::new(peer.ip(), local_ip, tls, policy);
        let server = self
            .session_server(peer.ip(), local_ip, channels.clone(), home.clone())
            .map_err(std::io::Error::other)?;
        let backend = tokio::spawn(server.service(theirs));
        let session = Arc::new(Session {
            client_ip: peer.ip(),
            channels,
            gate,
            login_timeout: self.config.login_timeout(),
            home,
            tls_id,
            conversation: Conversation::default(),
        });
        let relayed = crate::control_channel::relay(client, ours, control_tls, session).await;
        // The relay closed libunftp's end; its session winds down by itself.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), backend).await;
        relayed
    }

    /// A libunftp server for one control connection. Cheap: it shares the
    /// login guard and account provider with every other session.
    fn session_server(
        &self,
        client_ip: std::net::IpAddr,
        local_ip: std::net::IpAddr,
        channels: Arc<DataChannels>,
        home: Arc<SessionHome>,
    ) -> Result<libunftp::Server<HomeStorage, Account>, libunftp::ServerError> {
        // PASV announces the configured address, else the address the client reached.
        let passive_host = match (self.passive_address, local_ip) {
            (Some(ip), _) => PassiveHost::Ip(ip),
            (None, std::net::IpAddr::V4(ip)) => PassiveHost::Ip(ip),
            (None, std::net::IpAddr::V6(_)) => PassiveHost::FromConnection,
        };
        let root = self.config.data_root.clone();
        // libunftp makes the storage once per session (one server per
        // session here): it moves file bytes over this session's data
        // connections itself.
        let link = DataLink {
            channels: channels.clone(),
            metrics: self.metrics.clone(),
        };
        let storage = Box::new(move || {
            // The root was checked at start; losing it later is fatal for the pod anyway.
            HomeStorage::new(root.clone(), home.clone())
                .expect("data root must stay an openable directory")
                .with_data(link.clone())
        });
        let login = Arc::new(SessionLogin {
            guard: self.guard.clone(),
            client_ip,
        });
        ServerBuilder::<HomeStorage, Account>::with_user_detail_provider(
            storage,
            self.provider.clone(),
        )
        .authenticator(login)
        // TLS on both channels is done in front of libunftp (see control_channel).
        .ftps_required(FtpsRequired::None, FtpsRequired::None)
        .passive_ports(self.config.passive.port_min..=self.config.passive.port_max)
        .passive_host(passive_host)
        .binder(PassiveBinder { channels })
        .idle_session_timeout(self.config.idle_timeout_seconds)
        .greeting(self.greeting)
        .metrics()
        .notify_data(TransferLog)
        .notify_presence(TransferLog)
        .build()
    }
}
