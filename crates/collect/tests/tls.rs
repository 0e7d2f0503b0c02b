//! HTTPS endpoints: a certificate for the name `grafana` (not for
//! 127.0.0.1) from testbed's throw-away CA (`testbed::tls`, which runs the
//! openssl command in a temporary directory); a real nginx serving a
//! Prometheus text page with it on loopback; collect scraping it with
//! `ca_file` and `server_name` into a real InfluxDB, and failing without.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Collect, check_config, config_head, query, rows, try_query, wait_for};

const METRICS: &str = "# HELP grafana_http_request_duration_seconds Time.\n\
# TYPE grafana_http_request_duration_seconds histogram\n\
grafana_http_request_duration_seconds_count{handler=\"/api/health\",method=\"GET\",status_code=\"200\"} 42\n\
grafana_http_request_duration_seconds_sum{handler=\"/api/health\",method=\"GET\",status_code=\"200\"} 0.25\n\
grafana_stat_totals_dashboard 7\n";

/// A throw-away CA, and a certificate it signs for DNS:grafana and an
/// address other than loopback.
fn make_pki() -> (testbed::tls::TestCa, testbed::tls::Certificate) {
    let pki = testbed::tls::TestCa::new("test ca").unwrap();
    let certificate = pki
        .issue(
            &["grafana", "grafana.default.svc"],
            &[std::net::Ipv4Addr::new(192, 0, 2, 10).into()],
        )
        .unwrap();
    (pki, certificate)
}

fn config(influx: &str, service: &str, url: &str, tls: &str) -> String {
    format!(
        r#"{head}
[inputs.cgroup]
enabled = false
[inputs.net]
enabled = false
[inputs.prometheus]
urls = ["{url}"]
{tls}
"#,
        head = config_head(influx, service),
    )
}

fn prometheus_points(influx: &str, service: &str) -> Vec<serde_json::Map<String, Value>> {
    rows(&query(
        influx,
        "metrics",
        &format!("SELECT * FROM \"prometheus\" WHERE service = '{service}'"),
        None,
    ))
}

#[test]
fn scrapes_https_with_ca_file_and_server_name_and_fails_without() {
    let (pki, certificate) = make_pki();
    let files = tempfile::tempdir().unwrap();
    let d = files.path();
    std::fs::write(d.join("metrics"), METRICS).unwrap();
    let port = testbed::free_port().unwrap();
    let nginx = testbed::web::Nginx::start(
        port,
        &format!(
            "server {{\n  listen 127.0.0.1:{port} ssl;\n\
             ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
             location = /metrics {{ default_type text/plain; alias {d}/metrics; }}\n}}\n",
            cert = certificate.cert.display(),
            key = certificate.key.display(),
            d = d.display()
        ),
    )
    .unwrap();
    let influx = testbed::Influxdb::start().unwrap();
    let i = influx.url();
    let url = format!("https://127.0.0.1:{port}/metrics");
    let ca = pki.ca_cert();
    let ca = ca.display();

    let good = Collect::start(&config(
        &i,
        "tls-good",
        &url,
        &format!("ca_file = \"{ca}\"\nserver_name = \"grafana\""),
    ));
    // Trusts only the system roots: the CA is unknown.
    let no_ca = Collect::start(&config(&i, "tls-noca", &url, "server_name = \"grafana\""));
    // Trusts the CA but checks the name 127.0.0.1, which the certificate lacks.
    let no_name = Collect::start(&config(
        &i,
        "tls-noname",
        &url,
        &format!("ca_file = \"{ca}\""),
    ));

    let points = wait_for(
        "prometheus points over https",
        Duration::from_secs(30),
        || {
            let s = try_query(
                &i,
                "metrics",
                "SELECT * FROM \"prometheus\" WHERE service = 'tls-good'",
                None,
            )
            .unwrap_or_default();
            let r = rows(&s);
            (r.len() >= 2).then_some(r)
        },
    );
    let with_handler = points
        .iter()
        .find(|p| p.get("handler").and_then(Value::as_str) == Some("/api/health"))
        .unwrap_or_else(|| panic!("{points:?}\nnginx: {}", nginx.logs()));
    assert_eq!(
        with_handler["grafana_http_request_duration_seconds_count"].as_f64(),
        Some(42.0),
        "{with_handler:?}"
    );
    assert_eq!(
        with_handler["grafana_http_request_duration_seconds_sum"].as_f64(),
        Some(0.25)
    );
    // The `url` tag is the configured URL, not the one rewritten to the name.
    assert_eq!(with_handler["url"].as_str(), Some(url.as_str()));
    assert!(
        points
            .iter()
            .any(|p| p["grafana_stat_totals_dashboard"].as_f64() == Some(7.0)),
        "{points:?}"
    );

    // The failing ones keep running and writing (their own `internal_collect`
    // points arrive) but log the failure and write no prometheus point.
    for (service, c) in [("tls-noca", &no_ca), ("tls-noname", &no_name)] {
        wait_for(
            &format!("{service} writing and logging the failure"),
            Duration::from_secs(30),
            || {
                let s = try_query(
                    &i,
                    "metrics",
                    &format!(
                        "SELECT * FROM \"internal_collect\" WHERE service = '{service}' LIMIT 1"
                    ),
                    None,
                )
                .unwrap_or_default();
                let log = c.log();
                (!s.is_empty() && log.contains("input failed") && log.contains(&url)).then_some(())
            },
        );
        assert!(
            prometheus_points(&i, service).is_empty(),
            "{service} wrote prometheus points; log:\n{}",
            c.log()
        );
    }
    // Each fails for its own reason.
    let log = no_ca.log();
    assert!(log.contains("UnknownIssuer"), "{log}");
    let log = no_name.log();
    assert!(log.contains("not valid for name"), "{log}");
    drop((good, no_ca, no_name));
}

#[test]
fn a_bad_ca_file_stops_collect_naming_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let check = |ca: &Path| {
        let path = dir.path().join("collect.toml");
        std::fs::write(
            &path,
            format!(
                "[inputs.prometheus]\nurls = [\"https://127.0.0.1:3000/metrics\"]\n\
                 ca_file = \"{}\"\nserver_name = \"grafana\"\n",
                ca.display()
            ),
        )
        .unwrap();
        let check = check_config(&path);
        // Starting for real fails the same way, before gathering anything.
        let start = Command::new(env!("CARGO_BIN_EXE_collect"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        [check, start].map(|out| {
            assert!(!out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stderr).into_owned()
        })
    };
    let missing = dir.path().join("no-such-ca.crt");
    for err in check(&missing) {
        assert!(err.contains("inputs.prometheus.ca_file"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for err in check(&garbage) {
        assert!(err.contains("inputs.prometheus.ca_file"), "{err}");
        assert!(err.contains(&garbage.display().to_string()), "{err}");
    }

    // server_name with a URL naming a host rather than an address.
    let (pki, _) = make_pki();
    let ok_ca = pki.ca_cert();
    let path = dir.path().join("named.toml");
    std::fs::write(
        &path,
        format!(
            "[inputs.prometheus]\nurls = [\"https://grafana:3000/metrics\"]\n\
             ca_file = \"{}\"\nserver_name = \"grafana\"\n",
            ok_ca.display()
        ),
    )
    .unwrap();
    let out = check_config(&path);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inputs.prometheus.server_name"), "{err}");
}
