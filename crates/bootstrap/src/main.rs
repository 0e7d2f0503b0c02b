use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bootstrap::wordpress::content;
use bootstrap::{grafana, influxdb, mysql, wordpress};
use clap::{Parser, Subcommand};
use daemon::secret;

/// One-shot seeding of the ft_services stack (see the crate docs).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// How long to wait for a server that is still starting: "500ms", "10s",
    /// "5m", "1h", or a bare number of seconds.
    #[arg(long, env = "BOOTSTRAP_TIMEOUT", default_value = "60s", value_parser = parse_timeout, global = true)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Database `wordpress` and accounts wordpress, phpmyadmin, collect.
    Mysql(MysqlArgs),
    /// Database `metrics` and users admin, collect, grafana.
    Influxdb(InfluxArgs),
    /// WordPress: install the site, then its admin and users.
    Wordpress(WordpressArgs),
    /// WordPress content: bring the image's bundled themes and plugins onto the volume.
    ///
    /// Runs in the wordpress pod at every start, before php-fpm and as its
    /// user. Reads the release's own wp-content kept in the image (--bundled)
    /// and writes WordPress's content directory on the volume (--content),
    /// created mode 0755 when missing. Each bundled item (every entry of
    /// themes/ and plugins/, and the files at the top such as index.php) is
    /// copied when missing (so a deleted one comes back), replaced when the
    /// bundled copy is newer (theme: Version of style.css; plugin: Version of
    /// its main file; by PHP's version_compare; other files: when their
    /// bytes differ), and kept otherwise. Nothing else is touched (uploads/,
    /// languages/, plugins and themes users installed). A copy is made into a
    /// hidden sibling and renamed into place. One log line per item; any I/O
    /// error exits non-zero naming the path.
    WordpressContent(ContentArgs),
    /// Grafana provisioning: InfluxDB data source and one dashboard per service.
    Grafana(GrafanaArgs),
}

#[derive(Debug, clap::Args)]
struct WordpressArgs {
    /// The site's public URL; default https://${LB_IP}:5050.
    #[arg(long, env = "WORDPRESS_SITE_URL")]
    site_url: Option<String>,
    /// The load balancer address the default site URL is built from.
    #[arg(long, env = "LB_IP")]
    lb_ip: Option<String>,
    /// The pod's own web server, where the installer is reached.
    #[arg(
        long,
        env = "WORDPRESS_LOCAL_URL",
        default_value = "https://127.0.0.1:5050"
    )]
    local_url: String,
    #[arg(long, env = "WORDPRESS_TITLE", default_value = "ft_services")]
    title: String,
    #[arg(
        long,
        env = "WORDPRESS_ADMIN_EMAIL",
        default_value = "admin@example.com"
    )]
    admin_email: String,
    /// Directory holding admin-password and users.
    #[arg(
        long,
        env = "WORDPRESS_SECRETS",
        default_value = "/run/secrets/ft-wordpress"
    )]
    secrets: PathBuf,
    #[arg(long, env = "WORDPRESS_DB_HOST", default_value = "mysql")]
    db_host: String,
    #[arg(long, env = "WORDPRESS_DB_PORT", default_value_t = 3306)]
    db_port: u16,
    #[arg(long, env = "WORDPRESS_DB_NAME", default_value = "wordpress")]
    db_name: String,
    #[arg(long, env = "WORDPRESS_DB_USER", default_value = "wordpress")]
    db_user: String,
    #[arg(
        long,
        env = "WORDPRESS_DB_PASSWORD_FILE",
        default_value = "/run/secrets/ft-mysql/wordpress-password"
    )]
    db_password_file: PathBuf,
    #[arg(long, default_value = "wp_")]
    table_prefix: String,
}

#[derive(Debug, clap::Args)]
struct ContentArgs {
    /// The release's own wp-content, kept in the image (read only).
    #[arg(
        long,
        env = "WORDPRESS_BUNDLED_CONTENT",
        default_value = content::DEFAULT_BUNDLED
    )]
    bundled: PathBuf,
    /// WordPress's content directory on the volume; must be writable by the
    /// user this runs as (or its parent, to create it).
    #[arg(long, env = "WORDPRESS_CONTENT", default_value = content::DEFAULT_CONTENT)]
    content: PathBuf,
}

#[derive(Debug, clap::Args)]
struct GrafanaArgs {
    /// Grafana's provisioning directory.
    #[arg(
        long,
        env = "GRAFANA_PROVISIONING",
        default_value = "/etc/grafana/provisioning"
    )]
    dir: PathBuf,
    /// InfluxDB as Grafana's server reaches it.
    #[arg(long, env = "INFLUXDB_URL", default_value = "http://influxdb:8086")]
    influxdb_url: String,
    #[arg(long, default_value = "metrics")]
    database: String,
    #[arg(long, default_value = "grafana")]
    user: String,
    /// The InfluxDB password of --user.
    #[arg(
        long,
        env = "GRAFANA_INFLUXDB_PASSWORD_FILE",
        default_value = "/run/secrets/ft-influxdb/grafana-password"
    )]
    password_file: PathBuf,
    /// collect's interval: Grafana's minimum query interval.
    #[arg(long, default_value = "10s")]
    min_interval: String,
}

#[derive(Debug, clap::Args)]
struct MysqlArgs {
    /// Unix socket of MariaDB; used unless --host is given.
    #[arg(long, env = "MYSQL_SOCKET", default_value = "/run/mysqld/mysqld.sock")]
    socket: PathBuf,
    /// Connect over TCP to this host instead of the socket.
    #[arg(long, env = "MYSQL_HOST")]
    host: Option<String>,
    #[arg(long, env = "MYSQL_PORT", default_value_t = 3306)]
    port: u16,
    /// Directory holding root-password, wordpress-password, phpmyadmin-password, collect-password.
    #[arg(long, env = "MYSQL_SECRETS", default_value = "/run/secrets/ft-mysql")]
    secrets: PathBuf,
    /// Leave root's authentication alone even if root-password exists.
    #[arg(long)]
    keep_root_auth: bool,
}

#[derive(Debug, clap::Args)]
struct InfluxArgs {
    #[arg(long, env = "INFLUXDB_URL", default_value = "http://127.0.0.1:8086")]
    url: String,
    /// Directory holding admin-password, collect-password, grafana-password.
    #[arg(
        long,
        env = "INFLUXDB_SECRETS",
        default_value = "/run/secrets/ft-influxdb"
    )]
    secrets: PathBuf,
}

/// `--timeout`: the workspace's duration grammar ([`daemon::duration`]), and
/// also a bare whole number, which means seconds. The number form is kept on
/// purpose, not deprecated: it is what `BOOTSTRAP_TIMEOUT` has always taken,
/// and a timeout in whole seconds is the one reading a bare number can have
/// here.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => daemon::duration::parse(s),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    daemon::log::init("info");
    let cli = Cli::parse();
    match cli.command {
        Command::Mysql(a) => {
            let server = match a.host {
                Some(host) => mysql::Server::Tcp { host, port: a.port },
                None => mysql::Server::Socket(a.socket),
            };
            let root_file = a.secrets.join("root-password");
            let root_password = if a.keep_root_auth || !root_file.exists() {
                None
            } else {
                Some(secret::read(&root_file)?)
            };
            let seed = mysql::Seed {
                server,
                root_password,
                wordpress_password: secret::read(&a.secrets.join("wordpress-password"))?,
                phpmyadmin_password: secret::read(&a.secrets.join("phpmyadmin-password"))?,
                collect_password: secret::read(&a.secrets.join("collect-password"))?,
                timeout: cli.timeout,
            };
            mysql::seed(&seed).await.context("bootstrap mysql")?;
        }
        Command::Influxdb(a) => {
            let seed = influxdb::Seed {
                url: a.url,
                admin_password: secret::read(&a.secrets.join("admin-password"))?,
                collect_password: secret::read(&a.secrets.join("collect-password"))?,
                grafana_password: secret::read(&a.secrets.join("grafana-password"))?,
                timeout: cli.timeout,
            };
            influxdb::seed(&seed).await.context("bootstrap influxdb")?;
        }
        Command::Wordpress(a) => {
            // Files first: a bad users file fails before anything is touched.
            let users = wordpress::users::load(&a.secrets.join("users"))?;
            let admin_password = secret::read(&a.secrets.join("admin-password"))?;
            let db_password = secret::read(&a.db_password_file)?;
            let site_url = match (a.site_url, a.lb_ip) {
                (Some(url), _) => url,
                (None, Some(ip)) => format!("https://{ip}:5050"),
                (None, None) => anyhow::bail!("set --site-url (WORDPRESS_SITE_URL) or LB_IP"),
            };
            let seed = wordpress::Seed {
                local_url: a.local_url,
                site_url,
                title: a.title,
                admin_password,
                admin_email: a.admin_email,
                users,
                db: wordpress::Database {
                    host: a.db_host,
                    port: a.db_port,
                    name: a.db_name,
                    user: a.db_user,
                    password: db_password,
                    table_prefix: a.table_prefix,
                },
                timeout: cli.timeout,
            };
            wordpress::seed(&seed)
                .await
                .context("bootstrap wordpress")?;
        }
        Command::WordpressContent(a) => {
            let c = content::Content {
                bundled: a.bundled,
                content: a.content,
            };
            let done = content::sync(&c).context("bootstrap wordpress-content")?;
            let count = |action| done.iter().filter(|o| o.action == action).count();
            tracing::info!(
                content = %c.content.display(),
                added = count(content::Action::Added),
                updated = count(content::Action::Updated),
                kept = count(content::Action::Kept) + count(content::Action::Link),
                "bundled themes and plugins in place"
            );
        }
        Command::Grafana(a) => {
            let p = grafana::Provisioning {
                dir: a.dir,
                influxdb_url: a.influxdb_url,
                database: a.database,
                user: a.user,
                password: secret::read(&a.password_file)?,
                min_interval: a.min_interval,
            };
            for path in grafana::provision(&p).context("bootstrap grafana")? {
                tracing::info!(path = %path.display(), "written");
            }
        }
    }
    tracing::info!("done");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeout_takes_units_or_bare_seconds() {
        assert_eq!(parse_timeout("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_timeout("1d").is_err());
        assert!(parse_timeout("").is_err());
    }
}
