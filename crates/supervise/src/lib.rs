//! `supervise`: PID 1 of every image.
//!
//! Started as the image's entrypoint (`supervise [--config FILE]`, default
//! `/etc/supervise.toml`, or `$SUPERVISE_CONFIG`), it renders the config
//! templates, starts the container's programs in dependency order, passes
//! their output through with a name prefix, reaps every zombie, serves a
//! health endpoint for Kubernetes' probes and, as soon as any service ends
//! or a oneshot fails, stops everything and exits non-zero so that the
//! container is restarted. `supervise check-config FILE` validates a config
//! and starts nothing.
//!
//! The config file:
//!
//! ```toml
//! [health]
//! listen = "0.0.0.0:9901"        # default
//!
//! [stop]
//! grace_seconds = 10             # SIGTERM, then SIGKILL after this long
//!
//! [[template]]                   # rendered before any program starts
//! source = "/etc/nginx/templates/default.conf"
//! target = "/etc/nginx/http.d/default.conf"
//! mode = "0640"                  # optional
//!
//! [[program]]
//! name = "php-fpm"
//! command = ["/usr/sbin/php-fpm82", "-F"]
//! kind = "service"               # default; or "oneshot" (must exit 0)
//! user = "nobody"                # optional
//! directory = "/"                # optional
//! env = { PHP_INI_SCAN_DIR = "/etc/php82/conf.d" }
//! ready = { unix = "/run/php-fpm.sock" }   # or tcp = "127.0.0.1:9000",
//!                                           # http = "http://127.0.0.1:8080/", command = ["..."]
//!
//! [[program]]
//! name = "nginx"
//! command = ["/usr/sbin/nginx", "-g", "daemon off;"]
//! after = ["php-fpm"]            # starts once php-fpm is ready (a oneshot: has exited 0)
//! ```
//!
//! Template placeholders are `${VAR}`: the value of the environment variable
//! `VAR` or, if `VAR_FILE` is set, the contents of that file (one trailing
//! newline removed). A placeholder with no value is an error naming the file,
//! the line and the variable.
