//! Debian's WordPress (`/usr/share/wordpress`) served by real nginx and
//! php-fpm, both started with their own configs in a temporary directory.
//!
//! Debian's `wp-config.php` picks `/etc/wordpress/config-$WORDPRESS_CONFIG.php`
//! when the web server passes that variable; each instance writes such a file
//! under a unique name and removes it when dropped. A second server on
//! another loopback port answers `/nginx_status` (stub_status) and
//! `/fpm-status` (php-fpm's pool status), as the stack's local status server does.

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::web::{Nginx, PhpFpm, status_locations};
use crate::{Error, free_port, io_err};

/// Where WordPress finds its database.
#[derive(Debug, Clone)]
pub struct WordpressDb {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: String,
}

/// nginx + php-fpm serving Debian's WordPress on `127.0.0.1:port()`.
#[derive(Debug)]
pub struct Wordpress {
    // Dropped in this order: nginx, then php-fpm, then the site's config.
    nginx: Nginx,
    fpm: PhpFpm,
    _config_file: SiteConfig,
    port: u16,
    status_port: u16,
}

/// A PHP single-quoted string literal.
fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Wordpress {
    pub fn start(db: &WordpressDb) -> Result<Self, Error> {
        let port = free_port()?;
        let status_port = free_port()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|t| t.as_nanos())
            .unwrap_or_default();
        let name = format!("testbed-{}-{nanos}", std::process::id());
        let config_file = PathBuf::from(format!("/etc/wordpress/config-{name}.php"));

        let mut php = String::from("<?php\n");
        for (k, v) in [
            ("DB_NAME", db.name.clone()),
            ("DB_USER", db.user.clone()),
            ("DB_PASSWORD", db.password.clone()),
            ("DB_HOST", format!("{}:{}", db.host, db.port)),
        ] {
            php.push_str(&format!("define('{k}', {});\n", php_string(&v)));
        }
        for key in [
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        ] {
            php.push_str(&format!("define('{key}', '{name}-{key}');\n"));
        }
        // The site runs in the host's namespace: it must never call out
        // (update checks, cron spawns, oEmbed). Loopback stays allowed.
        php.push_str(
            "define('WP_HTTP_BLOCK_EXTERNAL', true);\n\
             define('AUTOMATIC_UPDATER_DISABLED', true);\n\
             define('WP_AUTO_UPDATE_CORE', false);\n\
             define('DISABLE_WP_CRON', true);\n",
        );
        fs::create_dir_all("/etc/wordpress").map_err(io_err("create /etc/wordpress"))?;
        fs::write(&config_file, php).map_err(io_err(format!("write {}", config_file.display())))?;
        let config_file = SiteConfig(config_file);

        let fpm = PhpFpm::start("www", 4)?;
        // fastcgi_params is written out rather than included: Debian's passes
        // HTTP_HOST without the port, which sends WordPress into a redirect loop.
        let params = "fastcgi_param QUERY_STRING $query_string;\n\
             fastcgi_param REQUEST_METHOD $request_method;\n\
             fastcgi_param CONTENT_TYPE $content_type;\n\
             fastcgi_param CONTENT_LENGTH $content_length;\n\
             fastcgi_param SCRIPT_NAME $fastcgi_script_name;\n\
             fastcgi_param REQUEST_URI $request_uri;\n\
             fastcgi_param DOCUMENT_URI $document_uri;\n\
             fastcgi_param DOCUMENT_ROOT $document_root;\n\
             fastcgi_param SERVER_PROTOCOL $server_protocol;\n\
             fastcgi_param GATEWAY_INTERFACE CGI/1.1;\n\
             fastcgi_param REMOTE_ADDR $remote_addr;\n\
             fastcgi_param REMOTE_PORT $remote_port;\n\
             fastcgi_param SERVER_ADDR $server_addr;\n\
             fastcgi_param SERVER_PORT $server_port;\n\
             fastcgi_param SERVER_NAME $server_name;\n\
             fastcgi_param HTTP_HOST $host:$server_port;\n";
        let servers = format!(
            "include /etc/nginx/mime.types;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root /usr/share/wordpress;\n    index index.php;\n\
               location / {{ try_files $uri $uri/ /index.php?$args; }}\n\
               location ~ \\.php$ {{\n{params}      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
                 fastcgi_param WORDPRESS_CONFIG {name};\n      fastcgi_pass {fpm_address};\n    }}\n  }}\n\
             server {{\n    listen 127.0.0.1:{status_port};\n{status}  }}\n",
            fpm_address = fpm.address(),
            status = status_locations(&fpm),
        );
        let nginx = Nginx::start(port, &servers)?;
        Ok(Wordpress {
            nginx,
            fpm,
            port,
            status_port,
            _config_file: config_file,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/nginx_status`
    pub fn nginx_status_url(&self) -> String {
        format!("http://127.0.0.1:{}/nginx_status", self.status_port)
    }

    /// `http://127.0.0.1:PORT/fpm-status`
    pub fn fpm_status_url(&self) -> String {
        format!("http://127.0.0.1:{}/fpm-status", self.status_port)
    }

    /// The php-fpm and nginx logs, for failure messages.
    pub fn logs(&self) -> String {
        self.fpm.logs() + &self.nginx.logs()
    }
}

/// The site's `/etc/wordpress/config-*.php`, removed when dropped.
#[derive(Debug)]
struct SiteConfig(PathBuf);

impl Drop for SiteConfig {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
