//! `ftpsd`: the FTPS server of the ftps image, built on libunftp with the
//! filesystem back end (`unftp-sbe-fs`) and rustls.
//!
//! # Running
//! `ftpsd [--config /etc/ftpsd.toml]` serves until SIGTERM;
//! `ftpsd --check-config` loads the configuration, users file, certificate
//! and key, reports, and exits (0 when all is well);
//! `echo -n secret | ftpsd hash-password` prints a users-file hash.
//!
//! # What it reads
//! - The TOML config ([`config::Config`], where every key is documented;
//!   every key optional, defaults are those of the cluster): control address
//!   `0.0.0.0:21`, metrics `0.0.0.0:9902`, `data_root = /var/lib/ftps`,
//!   users file `/run/secrets/ft-ftps/users`, `[tls] cert/key` under
//!   `/run/secrets/ft-tls/`, `[passive] port_min/port_max` (the cluster's
//!   passive range) and `address` (the load balancer's IPv4, filled in by
//!   supervise from `${LB_IP}`; empty = the control connection's local
//!   address), session
//!   limits and timeouts, and the `[login]` policy.
//! - The users file: one `name:$pbkdf2-sha256$i=N$salt$key` line per user
//!   (PHC string, standard base64 without padding; `#` comments). See
//!   [`users`]. Plain-text passwords are not accepted.
//!
//! # What it does
//! Explicit FTPS only: `AUTH TLS` (TLS 1.2 or 1.3) is required before `USER`,
//! and `PROT P` before any data port is opened; ftpsd terminates the control
//! connection's TLS itself and relays the commands to libunftp, because
//! libunftp 0.24 enforces `PROT P` for `PASV` only ([`control_channel`]).
//! Passive mode (PASV and EPSV) in the configured port range; every data
//! connection must resume a TLS session the server issued to a control
//! connection of the same user ([`tls_sessions`]), and a failed one is
//! answered (`522`/`425`) in place of its transfer's reply
//! ([`data_channel`]); a download's `226` waits until its data reached the
//! client. A transfer of a missing path gets a plain `550`, `MFMT` sets
//! modification times, `FEAT` lists what is implemented ([`features`]). Each user is confined to `<data_root>/<user>`,
//! created (mode 0700) at first login; the back end resolves every path
//! beneath that directory with `cap-std`, so `..`, absolute paths and
//! symlinks cannot leave it, and stages uploads in `<data_root>/.uploads`
//! ([`storage`]). Failed logins are delayed and lock the account out
//! ([`login_guard`]); connections that do not log in are bounded and timed
//! out, logged-in sessions capped ([`admission`]); idle sessions are closed.
//! Nothing depends on the client's address, which behind the cluster's load
//! balancer is the same for everyone.
//!
//! # What it writes
//! Files under the data root; logs (one structured line per login, transfer
//! and change) to stderr; Prometheus metrics at `GET /metrics` ([`metrics`]).
//!
//! # Privileges
//! It needs no root: the image runs it as an unprivileged user owning the
//! data root. In the cluster the pod's sysctl
//! `net.ipv4.ip_unprivileged_port_start=21` (k8s/ftps/deployment.yaml) lets
//! it bind port 21: the pod sets no_new_privs (`allowPrivilegeEscalation:
//! false`), which voids file capabilities. The image also gives the binary
//! `cap_net_bind_service` (docker/ftps/Dockerfile), which serves only
//! runtimes without no_new_privs, such as a plain `docker run`.

pub mod accounts;
pub mod admission;
pub mod config;
pub mod control_channel;
pub mod conversation;
pub mod data_channel;
pub mod data_port;
pub mod features;
pub mod login_guard;
pub mod metrics;
pub mod paths;
pub mod server;
pub mod storage;
pub mod tls;
pub mod tls_sessions;
pub mod transfer_log;
pub mod users;

pub use config::Config;
pub use server::Ftpsd;
