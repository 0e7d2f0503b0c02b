//! The one list of services the dashboards are generated from.
//!
//! Measurement and field names are those `collect` writes (the table at the
//! top of `crates/collect/src/lib.rs`); every query here is data, so a
//! renamed field is a one-line change.

/// A service of the stack: its programs (as `collect`'s procstat input
/// names them, i.e. supervise's program names) and its own figures.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub programs: &'static [&'static str],
    pub figures: &'static [Figure],
}

/// One panel of a service's own figures.
#[derive(Debug)]
pub struct Figure {
    pub title: &'static str,
    /// Grafana unit id (`reqps`, `bytes`, `short`, ...).
    pub unit: &'static str,
    pub queries: &'static [Select],
}

/// One InfluxQL query: `SELECT {fields} FROM {measurement} WHERE <service,
/// pod, time> GROUP BY time($__interval), "pod"{group_by}`.
#[derive(Debug)]
pub struct Select {
    pub fields: &'static str,
    pub measurement: &'static str,
    /// Extra tags to group by, each quoted, comma-first: `, "interface"`.
    pub group_by: &'static str,
    /// Grafana legend alias (`$tag_pod`, `$col`...).
    pub alias: &'static str,
}

const NGINX_REQUESTS: Figure = Figure {
    title: "nginx requests",
    unit: "reqps",
    queries: &[Select {
        fields: r#"non_negative_derivative(mean("requests"), 1s) AS "requests""#,
        measurement: "nginx",
        group_by: "",
        alias: "$tag_pod requests/s",
    }],
};

const NGINX_CONNECTIONS: Figure = Figure {
    title: "nginx connections",
    unit: "short",
    queries: &[Select {
        fields: r#"mean("active") AS "active", mean("reading") AS "reading", mean("writing") AS "writing", mean("waiting") AS "waiting""#,
        measurement: "nginx",
        group_by: "",
        alias: "$tag_pod $col",
    }],
};

const PHPFPM_POOL: Figure = Figure {
    title: "php-fpm pool",
    unit: "short",
    queries: &[Select {
        fields: r#"mean("active_processes") AS "active", mean("idle_processes") AS "idle", mean("listen_queue") AS "queued""#,
        measurement: "phpfpm",
        group_by: "",
        alias: "$tag_pod $col",
    }],
};

const PHPFPM_ACCEPTED: Figure = Figure {
    title: "php-fpm requests",
    unit: "reqps",
    queries: &[Select {
        fields: r#"non_negative_derivative(mean("accepted_conn"), 1s) AS "accepted""#,
        measurement: "phpfpm",
        group_by: "",
        alias: "$tag_pod accepted/s",
    }],
};

/// Every service of the stack, in the order of docs/contract.md.
pub const SERVICES: &[Service] = &[
    Service {
        name: "nginx",
        programs: &["nginx", "sshd", "collect"],
        figures: &[NGINX_REQUESTS, NGINX_CONNECTIONS],
    },
    Service {
        name: "wordpress",
        programs: &["nginx", "php-fpm", "collect"],
        figures: &[NGINX_REQUESTS, PHPFPM_POOL, PHPFPM_ACCEPTED],
    },
    Service {
        name: "phpmyadmin",
        programs: &["nginx", "php-fpm", "collect"],
        figures: &[NGINX_REQUESTS, PHPFPM_POOL, PHPFPM_ACCEPTED],
    },
    Service {
        name: "mysql",
        programs: &["mariadbd", "collect"],
        figures: &[
            Figure {
                title: "MySQL queries",
                unit: "ops",
                queries: &[Select {
                    fields: r#"non_negative_derivative(mean("questions"), 1s) AS "questions", non_negative_derivative(mean("com_select"), 1s) AS "select""#,
                    measurement: "mysql",
                    group_by: "",
                    alias: "$tag_pod $col/s",
                }],
            },
            Figure {
                title: "MySQL connections",
                unit: "short",
                queries: &[Select {
                    fields: r#"mean("threads_connected") AS "connected", mean("threads_running") AS "running""#,
                    measurement: "mysql",
                    group_by: "",
                    alias: "$tag_pod $col",
                }],
            },
            Figure {
                title: "MySQL new connections",
                unit: "cps",
                queries: &[Select {
                    fields: r#"non_negative_derivative(mean("connections"), 1s) AS "connections", non_negative_derivative(mean("aborted_connects"), 1s) AS "aborted""#,
                    measurement: "mysql",
                    group_by: "",
                    alias: "$tag_pod $col/s",
                }],
            },
        ],
    },
    Service {
        name: "influxdb",
        programs: &["influxd", "collect"],
        figures: &[
            Figure {
                title: "InfluxDB writes",
                unit: "short",
                queries: &[Select {
                    fields: r#"non_negative_derivative(mean("pointsWrittenOK"), 1s) AS "points", non_negative_derivative(mean("writeReq"), 1s) AS "write requests""#,
                    measurement: "influxdb_httpd",
                    group_by: "",
                    alias: "$tag_pod $col/s",
                }],
            },
            Figure {
                title: "InfluxDB queries",
                unit: "reqps",
                queries: &[Select {
                    fields: r#"non_negative_derivative(mean("queryReq"), 1s) AS "queries""#,
                    measurement: "influxdb_httpd",
                    group_by: "",
                    alias: "$tag_pod $col/s",
                }],
            },
            Figure {
                title: "InfluxDB series",
                unit: "short",
                queries: &[Select {
                    fields: r#"mean("numSeries") AS "series""#,
                    measurement: "influxdb_database",
                    group_by: r#", "database""#,
                    alias: "$tag_pod $tag_database",
                }],
            },
        ],
    },
    Service {
        name: "grafana",
        programs: &["grafana-server", "collect"],
        figures: &[
            Figure {
                title: "Grafana HTTP requests",
                unit: "reqps",
                queries: &[Select {
                    fields: r#"non_negative_derivative(sum("grafana_http_request_duration_seconds_count"), 1s) AS "requests""#,
                    measurement: "prometheus",
                    group_by: "",
                    alias: "$tag_pod requests/s",
                }],
            },
            Figure {
                title: "Grafana dashboards",
                unit: "short",
                queries: &[Select {
                    fields: r#"max("grafana_stat_totals_dashboard") AS "dashboards""#,
                    measurement: "prometheus",
                    group_by: "",
                    alias: "$tag_pod $col",
                }],
            },
        ],
    },
    Service {
        name: "ftps",
        programs: &["ftpsd", "collect"],
        figures: &[
            Figure {
                title: "FTPS sessions",
                unit: "short",
                queries: &[Select {
                    fields: r#"max("ftpsd_sessions_active") AS "active sessions""#,
                    measurement: "prometheus",
                    group_by: "",
                    alias: "$tag_pod $col",
                }],
            },
            Figure {
                title: "FTPS logins",
                unit: "short",
                queries: &[Select {
                    fields: r#"non_negative_derivative(max("ftpsd_logins_total"), 1s) AS "logins""#,
                    measurement: "prometheus",
                    group_by: r#", "result""#,
                    alias: "$tag_pod $tag_result/s",
                }],
            },
            Figure {
                title: "FTPS bytes",
                unit: "Bps",
                queries: &[Select {
                    fields: r#"non_negative_derivative(max("ftp_backend_write_bytes"), 1s) AS "uploaded", non_negative_derivative(max("ftp_backend_read_bytes"), 1s) AS "downloaded""#,
                    measurement: "prometheus",
                    group_by: "",
                    alias: "$tag_pod $col",
                }],
            },
        ],
    },
];
