//! Debian's WordPress (`/usr/share/wordpress`) served by real nginx and
//! php-fpm, both started with their own configs in a temporary directory.
//!
//! Debian's `wp-config.php` picks `/etc/wordpress/config-$WORDPRESS_CONFIG.php`
//! when the web server passes that variable; each instance writes such a file
//! under a unique name and removes it when dropped. A second server on
//! another loopback port answers `/nginx_status` (stub_status) and
//! `/fpm-status` (php-fpm's pool status), as the stack's local status server does.

use std::fs;
use std::process::{Child, Command};
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::{Error, free_port, io_err, spawn_logged, stop, wait_for_port};

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
    dir: TempDir,
    port: u16,
    status_port: u16,
    config_file: std::path::PathBuf,
    fpm: Option<Child>,
    nginx: Option<Child>,
}

/// A PHP single-quoted string literal.
fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Wordpress {
    pub fn start(db: &WordpressDb) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("testbed-wordpress-")
            .tempdir()
            .map_err(io_err("create temp dir"))?;
        let d = dir.path().to_path_buf();
        let port = free_port()?;
        let status_port = free_port()?;
        let fpm_port = free_port()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|t| t.as_nanos())
            .unwrap_or_default();
        let name = format!("testbed-{}-{nanos}", std::process::id());
        let config_file = std::path::PathBuf::from(format!("/etc/wordpress/config-{name}.php"));

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
        fs::create_dir_all("/etc/wordpress").map_err(io_err("create /etc/wordpress"))?;
        fs::write(&config_file, php).map_err(io_err(format!("write {}", config_file.display())))?;

        let fpm_conf = format!(
            "[global]\npid = {d}/php-fpm.pid\nerror_log = {d}/php-fpm.log\ndaemonize = no\n\
             [www]\nuser = root\ngroup = root\nlisten = 127.0.0.1:{fpm_port}\n\
             pm = static\npm.max_children = 4\npm.status_path = /fpm-status\n\
             catch_workers_output = yes\n",
            d = d.display()
        );
        fs::write(d.join("php-fpm.conf"), fpm_conf).map_err(io_err("write php-fpm.conf"))?;
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
        let nginx_conf = format!(
            "user root;\nworker_processes 1;\ndaemon off;\nerror_log {d}/nginx-error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n\
               client_body_temp_path {d}/client_body;\n  fastcgi_temp_path {d}/fastcgi;\n\
               proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root /usr/share/wordpress;\n    index index.php;\n\
                 location / {{ try_files $uri $uri/ /index.php?$args; }}\n\
                 location ~ \\.php$ {{\n{params}      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
                   fastcgi_param WORDPRESS_CONFIG {name};\n      fastcgi_pass 127.0.0.1:{fpm_port};\n    }}\n  }}\n\
               server {{\n    listen 127.0.0.1:{status_port};\n\
                 location = /nginx_status {{ stub_status; }}\n\
                 location = /fpm-status {{\n{params}      fastcgi_param SCRIPT_FILENAME /fpm-status;\n      fastcgi_pass 127.0.0.1:{fpm_port};\n    }}\n  }}\n}}\n",
            d = d.display()
        );
        fs::write(d.join("nginx.conf"), nginx_conf).map_err(io_err("write nginx.conf"))?;

        let mut wp = Wordpress {
            dir,
            port,
            status_port,
            config_file,
            fpm: None,
            nginx: None,
        };
        let fpm_log = d.join("php-fpm.out");
        let mut fpm = spawn_logged(
            Command::new("php-fpm8.2")
                .args(["-F", "-R", "-y"])
                .arg(d.join("php-fpm.conf")),
            &fpm_log,
        )?;
        let ready = wait_for_port("php-fpm", fpm_port, &mut fpm, &fpm_log);
        wp.fpm = Some(fpm);
        ready?;
        let nginx_log = d.join("nginx.out");
        let mut nginx = spawn_logged(
            Command::new("nginx")
                .arg("-p")
                .arg(&d)
                .arg("-c")
                .arg(d.join("nginx.conf")),
            &nginx_log,
        )?;
        let ready = wait_for_port("nginx", port, &mut nginx, &nginx_log);
        wp.nginx = Some(nginx);
        ready?;
        Ok(wp)
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
        let d = self.dir.path();
        ["php-fpm.log", "php-fpm.out", "nginx-error.log", "nginx.out"]
            .iter()
            .map(|f| format!("--- {f}\n{}", crate::read_log(&d.join(f))))
            .collect()
    }
}

impl Drop for Wordpress {
    fn drop(&mut self) {
        if let Some(mut c) = self.nginx.take() {
            stop(&mut c);
        }
        if let Some(mut c) = self.fpm.take() {
            stop(&mut c);
        }
        let _ = fs::remove_file(&self.config_file);
    }
}
