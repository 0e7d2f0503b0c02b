//! `bootstrap grafana`: the generated provisioning against Grafana's schema,
//! and every panel query against real data written by `collect`.
#![allow(clippy::unwrap_used)]

mod seeding;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seeding::{bootstrap, seed_mysql, start_wordpress, succeeded};
use serde_json::Value;

const SERVICES: [&str; 7] = [
    "nginx",
    "wordpress",
    "phpmyadmin",
    "mysql",
    "influxdb",
    "grafana",
    "ftps",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `bootstrap grafana` into a fresh directory.
fn provision(dir: &Path) -> Vec<(String, Value)> {
    let pw = dir.join("grafana-password");
    std::fs::write(&pw, "pw\n").unwrap();
    succeeded(bootstrap([
        "grafana".as_ref(),
        "--dir".as_ref(),
        dir.join("provisioning").as_os_str(),
        "--password-file".as_ref(),
        pw.as_os_str(),
    ]));
    SERVICES
        .iter()
        .map(|s| {
            let p = dir.join(format!("provisioning/dashboards/ft_services/{s}.json"));
            let text = std::fs::read_to_string(&p).unwrap();
            (s.to_string(), serde_json::from_str(&text).unwrap())
        })
        .collect()
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    let modules = workspace().join("tests/node_modules");
    assert!(
        modules.join("@grafana/schema").exists(),
        "tests/node_modules lacks @grafana/schema: run ./tests/run.sh (it runs npm ci --prefix tests)"
    );
    Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_dashboards.mjs"))
        .arg(&modules)
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn dashboards_match_grafanas_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path());
    let dashboards = dir.path().join("provisioning/dashboards/ft_services");
    let files: Vec<PathBuf> = SERVICES
        .iter()
        .map(|s| dashboards.join(format!("{s}.json")))
        .collect();
    let out = validate(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The check can fail: a mistyped key is refused.
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        text.replace("\"schemaVersion\"", "\"schemaVersoin\""),
    )
    .unwrap();
    assert!(!validate(&[broken]).status.success());

    let ds =
        std::fs::read_to_string(dir.path().join("provisioning/datasources/influxdb.yaml")).unwrap();
    for needle in [
        "type: influxdb",
        "url: \"http://influxdb:8086\"",
        "dbName: \"metrics\"",
        "user: \"grafana\"",
        "password: \"pw\"",
    ] {
        assert!(ds.contains(needle), "{needle} not in {ds}");
    }
}

/// A process killed when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// InfluxQL over HTTP: (series, error).
fn influx(url: &str, q: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", "--data-urlencode"])
        .arg(format!("q={q}"))
        .arg(format!("{url}/query?db=metrics&epoch=ms"))
        .output()
        .unwrap();
    assert!(out.status.success(), "query failed: {q}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn has_values(resp: &Value) -> bool {
    resp["results"][0]["series"]
        .as_array()
        .is_some_and(|series| {
            series.iter().any(|s| {
                s["values"].as_array().is_some_and(|rows| {
                    rows.iter()
                        .any(|r| r.as_array().unwrap().iter().skip(1).any(|v| !v.is_null()))
                })
            })
        })
}

/// Grafana's regex escaping of a variable value inside `/.../`.
fn regex_escape(v: &str) -> String {
    v.chars()
        .flat_map(|c| {
            if r"\^$.|?*+()[]{}/".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A running ftpsd and its metrics port.
struct Ftps {
    _process: Running,
    metrics_port: u16,
    /// Holds ftpsd's certificate files.
    _ca: testbed::tls::TestCa,
}

/// Starts ftpsd with a certificate from testbed's throw-away CA and one
/// user, then uploads and downloads a file with curl so its byte and login
/// counters move.
fn start_ftpsd(bin: &Path, w: &Path) -> Ftps {
    let d = w.join("ftps");
    std::fs::create_dir_all(d.join("data/ft")).unwrap();
    let ca = testbed::tls::TestCa::new("grafana test ca").unwrap();
    let tls = ca
        .issue(&["localhost"], &[std::net::Ipv4Addr::LOCALHOST.into()])
        .unwrap();
    let mut hasher = Command::new(bin)
        .args(["hash-password", "--iterations", "1000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    hasher.stdin.take().unwrap().write_all(b"ft-pw\n").unwrap();
    let hash = hasher.wait_with_output().unwrap();
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap();
    std::fs::write(d.join("users"), format!("ft:{}\n", hash.trim())).unwrap();
    let port = testbed::free_port().unwrap();
    let metrics_port = testbed::free_port().unwrap();
    let pasv = testbed::free_port_range(4).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         data_root = \"{d}/data\"\nusers_file = \"{d}/users\"\n\
         [tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
         [passive]\nport_min = {pasv}\nport_max = {}\naddress = \"127.0.0.1\"\n",
        pasv + 3,
        d = d.display(),
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    std::fs::write(d.join("ftpsd.toml"), config).unwrap();
    let log = std::fs::File::create(d.join("ftpsd.log")).unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(d.join("ftpsd.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err()
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ftpsd exited ({status}): {}",
                std::fs::read_to_string(d.join("ftpsd.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "ftpsd not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let process = Running(child);
    let file = d.join("upload.txt");
    std::fs::write(&file, "x".repeat(4096)).unwrap();
    for args in [
        vec!["-T".to_string(), file.display().to_string()],
        vec!["-o".to_string(), "/dev/null".to_string()],
    ] {
        let out = Command::new("curl")
            .args(["-sS", "--ssl-reqd", "-k", "--ftp-pasv", "-u", "ft:ft-pw"])
            .args(&args)
            .arg(format!("ftp://127.0.0.1:{port}/upload.txt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ftps {
        _process: process,
        metrics_port,
        _ca: ca,
    }
}

#[test]
fn every_panel_query_returns_data_written_by_collect() {
    let t0 = Instant::now();
    // Built by the same `cargo test --workspace` run, not by this test.
    let collect_bin = testbed::workspace_bin("collect").unwrap();
    let ftpsd_bin = testbed::workspace_bin("ftpsd").unwrap();
    let influxdb = testbed::Influxdb::start().unwrap();
    let db = testbed::Mariadb::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // MySQL's collect account, made by bootstrap itself.
    let secrets = seed_mysql(&db, w);

    // Real nginx stub_status and php-fpm pool status.
    let web = start_wordpress(&db);

    // The real ftpsd, with one upload and one download through curl.
    let ftps = start_ftpsd(&ftpsd_bin, w);

    // Grafana is not installable here (no Debian package): a static
    // Prometheus text file stands in for its /metrics, with the series names
    // Grafana exposes.
    let metrics = w.join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    std::fs::write(
        metrics.join("grafana"),
        "# TYPE grafana_http_request_duration_seconds histogram\n\
         grafana_http_request_duration_seconds_bucket{handler=\"/api/health\",method=\"GET\",status_code=\"200\",le=\"+Inf\"} 5\n\
         grafana_http_request_duration_seconds_sum{handler=\"/api/health\",method=\"GET\",status_code=\"200\"} 0.25\n\
         grafana_http_request_duration_seconds_count{handler=\"/api/health\",method=\"GET\",status_code=\"200\"} 5\n\
         # TYPE grafana_stat_totals_dashboard gauge\ngrafana_stat_totals_dashboard 7\n",
    )
    .unwrap();
    let metrics_port = testbed::free_port().unwrap();
    let server = Running(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &metrics_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&metrics)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Programs absent here (sshd, grafana-server) are this stand-in,
    // through a pid file.
    let standin_pid = w.join("standin.pid");
    std::fs::write(&standin_pid, server.0.id().to_string()).unwrap();
    let standin = |name: &str| {
        format!(
            "{{ name = \"{name}\", pid_file = \"{}\" }}",
            standin_pid.display()
        )
    };

    let mysql_pw = secrets.join("collect-password");
    let mut collects = Vec::new();
    for service in SERVICES {
        let (programs, inputs) = match service {
            "nginx" => (
                format!("\"nginx\", {}, \"collect\"", standin("sshd")),
                format!("[inputs.nginx]\nurl = \"{}\"\n", web.nginx_status_url()),
            ),
            "wordpress" | "phpmyadmin" => (
                "\"nginx\", { name = \"php-fpm\", pattern = \"php-fpm\" }, \"collect\"".to_string(),
                format!(
                    "[inputs.nginx]\nurl = \"{}\"\n[inputs.phpfpm]\nurl = \"{}\"\n",
                    web.nginx_status_url(),
                    web.fpm_status_url()
                ),
            ),
            "mysql" => (
                "\"mariadbd\", \"collect\"".to_string(),
                format!(
                    "[inputs.mysql]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"collect\"\npassword_file = \"{}\"\n",
                    db.port(),
                    mysql_pw.display()
                ),
            ),
            "influxdb" => (
                "\"influxd\", \"collect\"".to_string(),
                format!(
                    "[inputs.influxdb]\nurl = \"{}/debug/vars\"\n",
                    influxdb.url()
                ),
            ),
            "ftps" => (
                "\"ftpsd\", \"collect\"".to_string(),
                format!(
                    "[inputs.prometheus]\nurls = [\"http://127.0.0.1:{}/metrics\"]\n",
                    ftps.metrics_port
                ),
            ),
            _ => (
                format!("{}, \"collect\"", standin("grafana-server")),
                format!(
                    "[inputs.prometheus]\nurls = [\"http://127.0.0.1:{metrics_port}/{service}\"]\n"
                ),
            ),
        };
        let config = format!(
            "interval = \"1s\"\nservice = \"{service}\"\npod = \"{service}-0\"\n\
             [output]\nurl = \"{}\"\ndatabase = \"metrics\"\nusername = \"\"\npassword_file = \"\"\n\
             [inputs.net]\ninclude_lo = true\n\
             [inputs.procstat]\nprograms = [{programs}]\n{inputs}",
            influxdb.url()
        );
        let path = w.join(format!("collect-{service}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(w.join(format!("collect-{service}.log"))).unwrap();
        collects.push(Running(
            Command::new(&collect_bin)
                .arg("--config")
                .arg(&path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
    }

    eprintln!("started everything at {:?}", t0.elapsed());
    // Wait for a few intervals of every service (derivatives need two points).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let resp = influx(
            &influxdb.url(),
            "SELECT count(\"usage_total\") FROM \"docker_container_cpu\" GROUP BY \"service\"",
        );
        let ready = resp["results"][0]["series"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter(|s| s["values"][0][1].as_u64().unwrap_or(0) >= 4)
                    .count()
            })
            .unwrap_or(0);
        if ready == SERVICES.len() {
            break;
        }
        let logs: String = SERVICES
            .iter()
            .map(|s| {
                std::fs::read_to_string(w.join(format!("collect-{s}.log"))).unwrap_or_default()
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "collect wrote too little: {resp}\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(collects);
    eprintln!("collected at {:?}", t0.elapsed());

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let time_filter = format!(
        "time >= {}ms and time <= {}ms",
        now_ms - 300_000,
        now_ms + 1_000
    );
    let mut checked = 0;
    let mut empty = Vec::new();
    for (service, dashboard) in provision(w) {
        // Variables first, as Grafana does: All = every value, regex-escaped.
        let vars = dashboard["templating"]["list"].as_array().unwrap();
        let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["service", "pod"]);
        assert_eq!(vars[0]["type"], "constant");
        let service_value = vars[0]["query"].as_str().unwrap();
        assert_eq!(service_value, service);
        let pod_query = vars[1]["query"]
            .as_str()
            .unwrap()
            .replace("$service", service_value);
        let resp = influx(&influxdb.url(), &pod_query);
        let pods: Vec<String> = resp["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| regex_escape(r[1].as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            pods,
            vec![regex_escape(&format!("{service}-0"))],
            "{service}: pod variable"
        );
        let pod = format!("({})", pods.join("|"));
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let q = target["query"]
                    .as_str()
                    .unwrap()
                    .replace("$timeFilter", &time_filter)
                    .replace("$__interval", "1s")
                    .replace("$pod", &pod)
                    .replace("$service", service_value);
                let macro_left = q
                    .split('$')
                    .skip(1)
                    .any(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
                assert!(!macro_left, "unsubstituted macro in {q}");
                let resp = influx(&influxdb.url(), &q);
                assert!(
                    resp["results"][0]["error"].is_null(),
                    "{service}: {q}: {resp}"
                );
                if !has_values(&resp) {
                    empty.push(format!("{service} / {}: {q}", panel["title"]));
                }
                checked += 1;
            }
        }
    }
    eprintln!("queried at {:?}", t0.elapsed());
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );
    assert!(checked > 7 * 10, "only {checked} queries");
}
