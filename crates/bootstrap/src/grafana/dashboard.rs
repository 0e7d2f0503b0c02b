//! One Grafana dashboard per service, generated from [`SERVICES`](super::services::SERVICES).
//!
//! Layout: a hidden constant `service` variable and a `pod` variable (every
//! pod of the service, all selected by default), then rows: the container (CPU, memory, network, processes and
//! program uptime), one row per program (procstat), and the service's own
//! figures. Queries are raw InfluxQL with Grafana's macros (`$timeFilter`,
//! `$__interval`, `$service`, `$pod`).

use serde_json::{Value, json};

use super::services::{Figure, Select, Service};

/// Grafana's dashboard schema version the JSON follows.
pub const SCHEMA_VERSION: u32 = 39;
/// The data source every panel uses (provisioned with this uid).
pub const DATASOURCE_UID: &str = "ft-influxdb";

/// The container figures every service has.
const CONTAINER: &[Figure] = &[
    Figure {
        title: "Container CPU",
        unit: "percent",
        queries: &[Select {
            fields: r#"mean("usage_percent") AS "cpu""#,
            measurement: "docker_container_cpu",
            group_by: "",
            alias: "$tag_pod",
        }],
    },
    Figure {
        title: "Container memory",
        unit: "bytes",
        queries: &[Select {
            fields: r#"mean("usage") AS "usage""#,
            measurement: "docker_container_mem",
            group_by: "",
            alias: "$tag_pod",
        }],
    },
    Figure {
        title: "Container network",
        unit: "Bps",
        queries: &[Select {
            fields: r#"non_negative_derivative(mean("bytes_recv"), 1s) AS "received", non_negative_derivative(mean("bytes_sent"), 1s) AS "sent""#,
            measurement: "net",
            group_by: r#", "interface""#,
            alias: "$tag_pod $tag_interface $col",
        }],
    },
    Figure {
        title: "Programs running (0 = down)",
        unit: "short",
        queries: &[Select {
            fields: r#"min("running") AS "running""#,
            measurement: "procstat_lookup",
            group_by: r#", "process_name""#,
            alias: "$tag_pod $tag_process_name",
        }],
    },
    Figure {
        title: "Program uptime (a drop is a restart)",
        unit: "s",
        queries: &[Select {
            fields: r#"min("uptime") AS "uptime""#,
            measurement: "procstat",
            group_by: r#", "process_name""#,
            alias: "$tag_pod $tag_process_name",
        }],
    },
];

/// The procstat figures of each program.
const PROGRAM: &[Figure] = &[
    Figure {
        title: "CPU",
        unit: "percent",
        queries: &[Select {
            fields: r#"mean("cpu_usage") AS "cpu""#,
            measurement: "procstat",
            group_by: "",
            alias: "$tag_pod",
        }],
    },
    Figure {
        title: "memory (RSS)",
        unit: "bytes",
        queries: &[Select {
            fields: r#"mean("memory_rss") AS "rss""#,
            measurement: "procstat",
            group_by: "",
            alias: "$tag_pod",
        }],
    },
    Figure {
        title: "processes and threads",
        unit: "short",
        queries: &[Select {
            fields: r#"mean("pid_count") AS "processes", mean("num_threads") AS "threads""#,
            measurement: "procstat",
            group_by: "",
            alias: "$tag_pod $col",
        }],
    },
];

/// An InfluxQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The raw InfluxQL of one query, with Grafana's macros and the dashboard's
/// variables (`$service`, `$pod`) left in.
pub fn influxql(program: Option<&str>, q: &Select) -> String {
    let program = program
        .map(|p| format!(r#" AND "process_name" = {}"#, quoted(p)))
        .unwrap_or_default();
    format!(
        r#"SELECT {fields} FROM "{m}" WHERE "service" = '$service' AND "pod" =~ /^$pod$/{program} AND $timeFilter GROUP BY time($__interval), "pod"{group} fill(null)"#,
        fields = q.fields,
        m = q.measurement,
        group = q.group_by,
    )
}

/// The query of the `pod` variable: every pod of `$service`.
pub const POD_VARIABLE_QUERY: &str =
    r#"SHOW TAG VALUES FROM "docker_container_cpu" WITH KEY = "pod" WHERE "service" = '$service'"#;

fn datasource() -> Value {
    json!({"type": "influxdb", "uid": DATASOURCE_UID})
}

/// Builds panels with ids and grid positions.
struct Layout {
    panels: Vec<Value>,
    next_id: u64,
    y: u64,
    x: u64,
}

impl Layout {
    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.y += 8;
            self.x = 0;
        }
        self.panels.push(json!({
            "id": self.next_id, "type": "row", "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        }));
        self.next_id += 1;
        self.y += 1;
    }

    fn graph(&mut self, title: String, figure: &Figure, program: Option<&str>) {
        let targets: Vec<Value> = figure
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                json!({
                    "refId": char::from(b'A' + u8::try_from(i).unwrap_or(25)).to_string(),
                    "datasource": datasource(),
                    "query": influxql(program, q),
                    "rawQuery": true,
                    "resultFormat": "time_series",
                    "alias": q.alias,
                })
            })
            .collect();
        self.panels.push(json!({
            "id": self.next_id, "type": "timeseries", "title": title,
            "datasource": datasource(),
            "gridPos": {"h": 8, "w": 8, "x": self.x, "y": self.y},
            "fieldConfig": {
                "defaults": {"unit": figure.unit, "custom": {"fillOpacity": 10, "spanNulls": true}},
                "overrides": [],
            },
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []},
                "tooltip": {"mode": "multi", "sort": "none"},
            },
            "targets": targets,
        }));
        self.next_id += 1;
        self.x += 8;
        if self.x >= 24 {
            self.x = 0;
            self.y += 8;
        }
    }
}

/// The dashboard's uid: stable, so provisioning updates it in place.
pub fn uid(service: &Service) -> String {
    format!("ft-{}", service.name)
}

/// The whole dashboard JSON of one service.
pub fn dashboard(service: &Service) -> Value {
    let mut l = Layout {
        panels: Vec::new(),
        next_id: 1,
        y: 0,
        x: 0,
    };
    l.row("Container");
    for f in CONTAINER {
        l.graph(f.title.to_string(), f, None);
    }
    for program in service.programs {
        l.row(&format!("Program {program}"));
        for f in PROGRAM {
            l.graph(format!("{program} {}", f.title), f, Some(program));
        }
    }
    l.row(&format!("{} figures", service.name));
    for f in service.figures {
        l.graph(f.title.to_string(), f, None);
    }
    json!({
        "uid": uid(service),
        "title": format!("ft_services / {}", service.name),
        "description": format!("Container, programs and own figures of the {} service, from collect.", service.name),
        "tags": ["ft_services", service.name],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": false,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": false,
        "links": [],
        "annotations": {"list": []},
        "templating": {"list": [{
            // The only per-service part of every query: a hidden constant.
            "name": "service",
            "label": "service",
            "type": "constant",
            "query": service.name,
            "current": {"selected": true, "text": service.name, "value": service.name},
            "options": [{"selected": true, "text": service.name, "value": service.name}],
            "hide": 2,
            "skipUrlSync": false,
        }, {
            "name": "pod",
            "label": "pod",
            "type": "query",
            "datasource": datasource(),
            "query": POD_VARIABLE_QUERY,
            "refresh": 2,
            "includeAll": true,
            "multi": true,
            "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "regex": "",
            "sort": 1,
            "hide": 0,
            "skipUrlSync": false,
        }]},
        "panels": l.panels,
    })
}
