#!/usr/bin/env python3
"""The stack test's checks, made from ft-client as a user would.

    checks.py PHASE...

Each phase is a group of checks registered with @phase (phases.py); each
prints PASS or FAIL with what it saw. Exit status 0 when every check passed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import traceback

import requests

from phases import REGISTRY, phase

LB = os.environ["LB_IP"]
SECRETS = os.environ["SECRETS_DIR"]
WORK = os.environ["STACK_WORK"]

LOCAL = os.path.join(SECRETS, "local")  # what only the user has
CA = os.path.join(SECRETS, "ft-tls", "ca.crt")

def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def secret(*path: str) -> str:
    with open(os.path.join(SECRETS, *path)) as f:
        return f.read().strip()


def session() -> requests.Session:
    """A browser: cookies, the generated CA, nothing from the environment."""
    s = requests.Session()
    s.trust_env = False
    s.verify = CA
    return s


def get(url: str, **kw) -> requests.Response:
    kw.setdefault("allow_redirects", False)
    kw.setdefault("timeout", 20)
    return session().get(url, **kw)


# At least a year, as HSTS preload lists ask.
HSTS_MIN_AGE = 31536000


def expect_hsts(r: requests.Response) -> int:
    """One Strict-Transport-Security header with a long max-age; returns it."""
    values = [v for k, v in r.raw.headers.items() if k.lower() == "strict-transport-security"]
    expect(len(values) == 1, f"{r.url}: Strict-Transport-Security headers {values}")
    m = re.search(r"max-age=(\d+)", values[0])
    expect(m is not None and int(m.group(1)) >= HSTS_MIN_AGE, f"{r.url}: HSTS {values[0]!r}")
    return int(m.group(1))


def expect_https_redirect(authority: str, path: str) -> str:
    """Plain HTTP on http://AUTHORITY answers 301 to the same URL over https."""
    r = get(f"http://{authority}{path}")
    expect(r.status_code == 301, f"http://{authority}/ answered {r.status_code}")
    loc = r.headers.get("Location")
    expect(loc == f"https://{authority}{path}", f"Location {loc}")
    return f"301 -> {loc}"


# --- 1. the nginx front ----------------------------------------------------------


@phase("web")
def http_redirects_to_https() -> str:
    return expect_https_redirect(LB, "/some/page?x=1")


@phase("web")
def https_front_page_verifies_against_ca() -> str:
    r = get(f"https://{LB}/")  # verify=CA: fails unless the certificate checks out
    expect(r.status_code == 200, f"https://LB/ answered {r.status_code}")
    expect_hsts(r)
    expect("ft_services" in r.text, "front page content")
    try:
        bare = requests.Session()
        bare.trust_env = False
        bare.get(f"https://{LB}/", timeout=10)  # the system's CAs only
        raise AssertionError("the certificate verified without the generated CA")
    except requests.exceptions.SSLError:
        pass
    return "200, certificate signed by the generated CA"


@phase("web")
def ca_revocation_list_served_where_the_certificate_says() -> str:
    r = get(f"http://{LB}/ca.crl")
    expect(r.status_code == 200, f"http://LB/ca.crl answered {r.status_code}")
    with tempfile.NamedTemporaryFile(suffix=".crl") as crl:
        crl.write(r.content)
        crl.flush()
        out = subprocess.run(["openssl", "crl", "-noout", "-CAfile", CA, "-in", crl.name],
                             capture_output=True, text=True)
    expect(out.returncode == 0 and "verify OK" in out.stdout + out.stderr, f"CRL: {out.stderr.strip()}")
    return "http://LB/ca.crl: a CRL signed by the generated CA"


@phase("web")
def wordpress_path_redirects_307_to_5050() -> str:
    for path in ("/wordpress", "/wordpress/"):
        r = get(f"https://{LB}{path}")
        expect(r.status_code == 307, f"{path} answered {r.status_code}")
        loc = r.headers.get("Location")
        expect(loc == f"https://{LB}:5050/", f"{path}: Location {loc}")
    return f"307 -> https://{LB}:5050/"


# --- 2. WordPress on 5050 ----------------------------------------------------------


def wordpress_users() -> list[tuple[str, str, str]]:
    """(login, role, password) of every line of ft-wordpress/users, plus admin."""
    users = {"admin": ("admin", "administrator", secret("ft-wordpress", "admin-password"))}
    for line in secret("ft-wordpress", "users").splitlines():
        if line.strip() and not line.startswith("#"):
            login, role, _email, password = line.split(":", 3)
            users[login] = (login, role, password)
    return list(users.values())


def wp_login(login: str, password: str) -> requests.Session:
    base = f"https://{LB}:5050"
    s = session()
    s.cookies.set("wordpress_test_cookie", "WP%20Cookie%20check")
    r = s.post(
        f"{base}/wp-login.php",
        data={"log": login, "pwd": password, "testcookie": "1", "wp-submit": "Log In",
              "redirect_to": f"{base}/wp-admin/"},
        allow_redirects=False, timeout=30,
    )
    expect(r.status_code == 302, f"{login}: login answered {r.status_code}")
    expect(r.headers["Location"].startswith(f"{base}/wp-admin/"),
           f"{login}: redirected to {r.headers['Location']}")
    expect(any(c.name.startswith("wordpress_logged_in_") for c in s.cookies), f"{login}: no login cookie")
    return s


@phase("wordpress")
def wordpress_plain_http_redirects_to_https() -> str:
    return expect_https_redirect(f"{LB}:5050", "/?p=1")


@phase("wordpress")
def wordpress_site_served_over_tls() -> str:
    r = get(f"https://{LB}:5050/")
    expect(r.status_code == 200, f"https://LB:5050/ answered {r.status_code}")
    expect_hsts(r)
    expect(f"https://{LB}:5050/" in r.text, "the site does not link its own address")
    return "home page 200, links https://LB:5050/"


@phase("wordpress")
def wordpress_every_seeded_user_logs_in() -> str:
    users = wordpress_users()
    expect(len(users) >= 3, f"only {len(users)} users in the Secret")
    for login, role, password in users:
        s = wp_login(login, password)
        r = s.get(f"https://{LB}:5050/wp-admin/profile.php", timeout=30)
        expect(r.status_code == 200 and login in r.text, f"{login}: profile page {r.status_code}")
        if role == "administrator":
            r = s.get(f"https://{LB}:5050/wp-admin/", timeout=30)
            expect(r.status_code == 200 and "Dashboard" in r.text, f"{login}: wp-admin {r.status_code}")
            r = s.get(f"https://{LB}:5050/wp-admin/users.php", timeout=30)
            expect(r.status_code == 200 and all(u[0] in r.text for u in users), f"{login}: user list")
    try:
        wp_login(users[0][0], "not-the-password")
        raise AssertionError("a wrong password logged in")
    except AssertionError as e:
        if "wrong password" in str(e):
            raise
    return f"{len(users)} users logged in ({', '.join(f'{u[0]}:{u[1]}' for u in users)}); admin in wp-admin"


# --- 3. phpMyAdmin, directly on 5000 and through the front's /phpmyadmin/ --------


def pma_login(base: str) -> tuple[requests.Session, str]:
    """Log in to phpMyAdmin at `base` as MySQL user phpmyadmin; the start page."""
    s = session()
    r = s.get(base, timeout=30)
    expect(r.status_code == 200, f"{base} answered {r.status_code}")
    expect_hsts(r)
    expect("pma_username" in r.text, f"{base}: no login form")
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    expect(token is not None, "no token on the login page")
    # An asset the login page links, relative to where it was served.
    asset = re.search(r'<script[^>]+src="([^"]+\.js)[^"]*"', r.text)
    expect(asset is not None, "no script on the login page")
    a = s.get(requests.compat.urljoin(base, asset.group(1)), timeout=30)
    expect(a.status_code == 200 and len(a.content) > 100, f"asset {asset.group(1)}: {a.status_code}")
    r = s.post(
        base + "index.php?route=/",
        data={
            "pma_username": "phpmyadmin",
            "pma_password": secret("ft-mysql", "phpmyadmin-password"),
            "server": "1",
            "route": "/",
            "token": token.group(1),
        },
        allow_redirects=False,
        timeout=30,
    )
    expect(r.status_code == 302, f"login POST answered {r.status_code}")
    loc = r.headers["Location"]
    target = requests.compat.urljoin(base, loc)
    expect(target.startswith(base), f"login redirected out of {base}: {loc}")
    r = s.get(target, timeout=30)
    expect(r.status_code == 200, f"after login: {r.status_code}")
    expect("pma_username" not in r.text and "logout" in r.text.lower(), "still on the login page after login")
    return s, r.text


def pma_lists_wordpress_db(base: str) -> None:
    s, _ = pma_login(base)
    r = s.get(base + "index.php?route=/server/databases", timeout=30)
    expect(r.status_code == 200, f"databases page: {r.status_code}")
    expect('data-filter-row="WORDPRESS"' in r.text or ">wordpress<" in r.text, "database wordpress not listed")


@phase("phpmyadmin")
def phpmyadmin_plain_http_redirects_to_https() -> str:
    return expect_https_redirect(f"{LB}:5000", "/index.php?x=1")


@phase("phpmyadmin")
def phpmyadmin_logs_in_and_lists_wordpress_db() -> str:
    pma_lists_wordpress_db(f"https://{LB}:5000/")
    return "login as phpmyadmin on :5000, database wordpress listed"


# phpMyAdmin's internals, PHP or not: never served (403 from the deny rule,
# which must win over the \.php$ location).
PMA_INTERNALS = ["setup/index.php", "libraries/constants.php", "libraries/classes/Config.php",
                 "templates/login/form.twig", "vendor/autoload.php", "sql/create_tables.sql",
                 "doc/html/_sources/index.rst.txt"]


@phase("phpmyadmin")
def phpmyadmin_internals_are_never_served() -> str:
    for base in (f"https://{LB}:5000/", f"https://{LB}/phpmyadmin/"):
        for path in PMA_INTERNALS:
            r = get(base + path)
            expect(r.status_code == 403, f"{base}{path} answered {r.status_code}")
    return f"{len(PMA_INTERNALS)} internal paths answer 403 on :5000 and under /phpmyadmin/"


@phase("phpmyadmin")
def phpmyadmin_through_front_proxy() -> str:
    pma_lists_wordpress_db(f"https://{LB}/phpmyadmin/")
    return "login page, assets, login and database list under /phpmyadmin/"


# --- 4. FTPS through the load balancer --------------------------------------------


def lftp(script: str) -> subprocess.CompletedProcess:
    settings = (
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; "
        f"set ssl:ca-file {CA}; set ssl:verify-certificate true; set ftp:passive-mode true; "
        "set ftp:prefer-epsv false; set net:max-retries 1; set net:timeout 15; set cmd:fail-exit true; "
        "debug 9; "
    )
    user = "ft"
    password = open(os.path.join(LOCAL, "ftps-password")).read().strip()
    return subprocess.run(
        ["lftp", "-c", f"{settings}open -u {user},{password} ftp://{LB}:21; {script}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def ftps_passive_ports() -> set[int]:
    """The ftps Service's ports but 21, from the manifests the test rendered."""
    import yaml

    with open(os.path.join(WORK, "rendered.yaml")) as f:
        for o in yaml.safe_load_all(f):
            if o and o["kind"] == "Service" and o["metadata"]["name"] == "ftps":
                return {p["port"] for p in o["spec"]["ports"]} - {21}
    raise AssertionError("no ftps Service in the rendered manifests")


@phase("ftps")
def lftp_upload_download_over_explicit_tls() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        up = os.path.join(tmp, "upload.bin")
        back = os.path.join(tmp, "download.bin")
        data = os.urandom(300_000)
        with open(up, "wb") as f:
            f.write(data)
        name = f"check-{int(time.time())}.bin"
        out = lftp(f"put {up} -o {name}; get {name} -o {back}; cls -1")
        log = out.stdout + out.stderr
        expect(out.returncode == 0, f"lftp exited {out.returncode}: {log[-1500:]}")
        with open(back, "rb") as f:
            expect(f.read() == data, "downloaded file differs from the uploaded one")
        expect(name in out.stdout, f"{name} not listed")
    ports = sorted(set(int(p) for p in re.findall(r"Connecting data socket to \(?[0-9.]+\)? port (\d+)", log)))
    passive = ftps_passive_ports()
    expect(ports and all(p in passive for p in ports), f"data connections on ports {ports}: {log[-1200:]}")
    expect(f"({LB.replace('.', ',')}," in log or f"Connecting data socket to ({LB})" in log,
           "PASV did not announce the load balancer's address")
    expect("AUTH TLS" in log, "no AUTH TLS in the session")
    on_volume = os.path.join(WORK, "volumes", "ftps", "ft", name)
    expect(os.path.getsize(on_volume) == len(data), f"{on_volume} missing on the pod's volume")
    return f"300 kB up and down, passive ports {ports} via {LB}, file on the volume"


@phase("ftps")
def ftps_refuses_plain_login() -> str:
    """The right password without AUTH TLS: the server itself must refuse USER with 530."""
    password = open(os.path.join(LOCAL, "ftps-password")).read().strip()
    out = subprocess.run(
        ["lftp", "-c", "set ftp:ssl-allow false; set net:max-retries 1; set net:timeout 10; "
         f"set cmd:fail-exit true; debug 9; open -u ft,{password} ftp://{LB}:21; ls"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    trace = out.stdout + out.stderr
    expect(out.returncode != 0, "a login without TLS was accepted")
    expect("---> AUTH TLS" not in trace, "lftp asked for TLS although told not to")
    reply = re.search(r"---> USER ft\s*\n(?:.*\n)*?<--- (\d{3})", trace)
    expect(reply is not None, f"no reply to USER in the trace: {trace[-800:]}")
    expect(reply.group(1) == "530", f"USER before AUTH TLS answered {reply.group(1)}, not 530")
    expect("<--- 230" not in trace, "logged in without TLS")
    return "USER before AUTH TLS answered 530 (right password, refused for want of TLS)"


# The protections of ftpsd that matter behind the load balancer, whose
# masquerade gives every client one source address (crates/ftpsd/tests/protections.py).
PROTECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../crates/ftpsd/tests/protections.py")


def protections(scenario: str, *extra: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, PROTECTIONS, scenario, "--host", LB, "--port", "21", "--cafile", CA,
         "--user", "ft", "--password", open(os.path.join(LOCAL, "ftps-password")).read().strip(), *extra],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    seen = out.stdout.strip().splitlines()
    expect(out.returncode == 0 and seen[-1:] == ["OK"], f"{scenario}: {out.stdout[-1500:]} {out.stderr[-800:]}")
    return "; ".join(line.strip() for line in seen[:-1])[:400]


@phase("ftps-lb")
def ftps_other_names_failing_do_not_lock_out_ft() -> str:
    # More failures than max_failures (5), all from the masquerade's address.
    return protections("shared_source", "--failures", "6")


@phase("ftps-lb")
def ftps_data_connections_bound_to_their_session() -> str:
    return " | ".join([protections("no_reuse_gets_522"),
                       protections("intruder_download", "--file", "lb-owned.bin"),
                       protections("intruder_upload", "--file", "lb-owned.bin")])


@phase("ftps-lb")
def ftps_every_failed_data_connection_gets_a_reply() -> str:
    return protections("failed_handshake", "--handshake-timeout", "5", "--connect-timeout", "9")


# --- 6. every pod's collect writes to InfluxDB -----------------------------------------

# A measurement only that pod's inputs write, besides internal_collect.
OWN_MEASUREMENT = {
    "nginx": "nginx",
    "wordpress": "phpfpm",
    "phpmyadmin": "phpfpm",
    "mysql": "mysql",
    "influxdb": "influxdb_httpd",
    "ftps": "prometheus",
    "grafana": "procstat",
}


def influx(namespace: str, host: str, user: str, password: str, q: str | None = None,
           write: str | None = None, epoch: str | None = None) -> tuple[int, dict]:
    """InfluxDB's HTTP API from inside a pod's network namespace (the
    NetworkPolicies let no client in): (status, JSON body)."""
    args = ["ip", "netns", "exec", f"ft-{namespace}", "curl", "-sS", "-K", "-", "-o", "-",
            "-w", "\n%{http_code}", "--max-time", "20"]
    if write is not None:
        args += ["--data-binary", write, f"http://{host}:8086/write?db=metrics"]
    else:
        args += ["-G", "--data-urlencode", f"q={q}", "--data-urlencode", "db=metrics"]
        if epoch:
            args += ["--data-urlencode", f"epoch={epoch}"]
        args.append(f"http://{host}:8086/query")
    # The credentials go through curl's config on stdin, not its command line.
    config = f'user = "{user}:{password}"\n'
    out = subprocess.run(args, input=config, capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("\n")
    expect(code.isdigit(), f"curl in {namespace}: {out.stderr.strip()}")
    return int(code), (json.loads(body) if body.strip() else {})


def influx_query(q: str) -> list:
    """InfluxQL as the admin, inside the influxdb pod (as `kubectl exec` would)."""
    code, body = influx("influxdb", "127.0.0.1", "admin", secret("ft-influxdb", "admin-password"), q, epoch="s")
    expect(code == 200, f"InfluxDB answered {code}: {str(body)[:200]}")
    result = body["results"][0]
    expect("error" not in result, f"InfluxDB: {result.get('error')}")
    return result.get("series", [])


def services_with_points(measurement: str, since: str) -> set[str]:
    series = influx_query(
        f'SELECT count(*) FROM "{measurement}" WHERE time > now() - {since} GROUP BY "service"'
    )
    return {s["tags"]["service"] for s in series if s.get("tags", {}).get("service")}


@phase("metrics")
def influxdb_has_points_from_every_pod() -> str:
    services = set(os.environ["STACK_SERVICES"].split())
    deadline = time.monotonic() + 90
    while True:
        missing = {}
        for svc in services:
            for m in ("internal_collect", OWN_MEASUREMENT[svc]):
                if svc not in services_with_points(m, "2m"):
                    missing.setdefault(svc, []).append(m)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    expect(not missing, f"no recent points for {missing}")
    pods = {s["tags"].get("pod") for s in influx_query(
        'SELECT count(*) FROM "internal_collect" WHERE time > now() - 2m GROUP BY "pod"')}
    expect({f"{svc}-0" for svc in services} <= pods, f"pod tags {pods}")
    return f"points tagged service= and pod= for {sorted(services)}"


# --- Grafana: no package here, so its provisioning is checked instead -----------------


def grafana_provisioning() -> str:
    # The pod's /etc as its overlay wrote it (tests/stack/pod.sh).
    return os.path.join(WORK, "pods", "grafana", "scratch", "upper", "etc", "grafana", "provisioning")


def influx_as(user: str, password: str, q: str) -> list:
    """A query as Grafana's server makes it: from the grafana pod to influxdb:8086."""
    ip = json.loads(os.environ["POD_IPS"])["influxdb"]
    code, body = influx("grafana", ip, user, password, q)
    expect(code == 200, f"InfluxDB answered {code} to {user}: {str(body)[:200]}")
    result = body["results"][0]
    expect("error" not in result, f"{q}: {result.get('error')}")
    return result.get("series", [])


@phase("grafana")
def grafana_datasource_reads_influxdb() -> str:
    import yaml

    path = os.path.join(grafana_provisioning(), "datasources")
    files = [f for f in os.listdir(path) if f.endswith((".yaml", ".yml"))]
    expect(len(files) == 1, f"data source files: {files}")
    doc = yaml.safe_load(open(os.path.join(path, files[0])))
    expect(doc.get("apiVersion") == 1, "apiVersion")
    (ds,) = doc["datasources"]
    expect(ds["type"] == "influxdb", f"type {ds['type']}")
    expect(ds["url"] == "http://influxdb:8086", f"url {ds['url']}")
    database = ds.get("database") or ds.get("jsonData", {}).get("dbName")
    expect(database == "metrics", f"database {database}")
    expect(ds["user"] == "grafana", f"user {ds['user']}")
    password = ds["secureJsonData"]["password"]
    expect(password == secret("ft-influxdb", "grafana-password"), "password differs from the Secret")
    # What Grafana's server would do with it: read, and only read.
    measurements = influx_as("grafana", password, "SHOW MEASUREMENTS")
    expect(measurements, "the data source sees no measurements")
    ip = json.loads(os.environ["POD_IPS"])["influxdb"]
    code, _ = influx("grafana", ip, "grafana", password, write="x,service=test v=1")
    expect(code == 403, f"grafana could write to InfluxDB ({code})")
    return f"{files[0]}: InfluxDB as grafana (read-only), {len(measurements[0]['values'])} measurements"


@phase("grafana")
def grafana_dashboards_query_real_points() -> str:
    import yaml

    prov = grafana_provisioning()
    providers = []
    for f in os.listdir(os.path.join(prov, "dashboards")):
        if f.endswith((".yaml", ".yml")):
            providers += yaml.safe_load(open(os.path.join(prov, "dashboards", f)))["providers"]
    expect(len(providers) == 1, f"dashboard providers: {providers}")
    folder = providers[0]["options"]["path"]
    expect(folder.startswith("/etc/grafana/provisioning/"), f"provider path {folder}")
    local = os.path.join(prov, os.path.relpath(folder, "/etc/grafana/provisioning"))
    boards = {}
    for f in sorted(os.listdir(local)):
        boards[f] = json.load(open(os.path.join(local, f)))
    services = {"nginx", "wordpress", "phpmyadmin", "mysql", "influxdb", "grafana", "ftps"}
    expect(len(boards) == len(services), f"dashboards: {sorted(boards)}")
    password = secret("ft-influxdb", "grafana-password")
    running = set(os.environ["STACK_SERVICES"].split())
    deadline = time.monotonic() + 90
    while True:  # a pod's first points (and a rate's second) may still be on their way
        results = run_dashboard_queries(boards, password)
        wanted = [r for r in results if r.service in running and not absent_source(r)]
        empty = [r for r in wanted if not r.rows]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(5)
    expect(not empty, "panels without data: " + "; ".join(f"{r.board}: {r.panel}" for r in empty))
    skipped = sorted({f"{r.board}: {r.panel}" for r in results if r.service in running and absent_source(r)})
    print(f"      not required here (their source, grafana-server, has no package here): {'; '.join(skipped)}")
    return f"{len(boards)} dashboards, all {len(wanted)} queries of running sources return points"


class PanelQuery:
    def __init__(self, board: str, service: str, panel: str, query: str, rows: int):
        self.board, self.service, self.panel, self.query, self.rows = board, service, panel, query, rows


def absent_source(r: PanelQuery) -> bool:
    """Queries of what grafana-server itself produces: its process and its /metrics."""
    return r.service == "grafana" and (
        "'grafana-server'" in r.query or 'FROM "prometheus"' in r.query)


def run_dashboard_queries(boards: dict, password: str) -> list[PanelQuery]:
    """Runs every panel query as Grafana would (user grafana), counting the rows each returns."""
    results = []
    for name, board in boards.items():
        expect(board.get("title") and board.get("uid"), f"{name}: title/uid")
        panels = [p for p in board["panels"] if p.get("type") != "row"]
        panels += [p for row in board["panels"] for p in row.get("panels", [])]
        expect(panels, f"{name}: no panels")
        # Dashboard variables as Grafana substitutes them: constants by their
        # value, the pod selector by "all pods".
        constants = {v["name"]: v["query"] for v in board.get("templating", {}).get("list", [])
                     if v.get("type") == "constant"}
        service = constants.get("service", "")

        def substitute(q: str) -> str:
            q = q.replace("/^$pod$/", "/.*/").replace("$timeFilter", "time > now() - 10m")
            q = q.replace("$__interval", "10s")
            for var, value in sorted(constants.items(), key=lambda kv: -len(kv[0])):
                q = q.replace(f"${var}", value)
            expect("$" not in q.replace("$tag_", ""), f"{name}: unsubstituted variable in {q}")
            return q

        for panel in panels:
            for target in panel.get("targets", []):
                expect(target["datasource"]["uid"] == panel["datasource"]["uid"] == "ft-influxdb",
                       f"{name}: panel {panel.get('title')} data source")
                q = substitute(target["query"])
                series = influx_as("grafana", password, q)
                rows = sum(1 for s in series for v in s.get("values", []) if any(x is not None for x in v[1:]))
                results.append(PanelQuery(name, service, panel.get("title", "?"), q, rows))
    return results


@phase("outage")
def every_pods_points_of_the_outage_arrived_once() -> str:
    """After stack.py's cut of influxdb:8086: each pod's collect rounds of the
    outage minute (internal_collect, one point a round) are all in InfluxDB,
    none twice, no gap longer than a round between the last point before the
    cut and the first after it."""
    window = json.load(open(os.path.join(WORK, "outage.json")))
    start, end = int(window["start"]), int(window["end"])
    services = set(os.environ["STACK_SERVICES"].split()) - {"influxdb"}
    deadline = time.monotonic() + 120
    while True:  # each collect sends what it kept once it reaches InfluxDB again
        series = influx_query(
            f'SELECT "buffer_size" FROM "internal_collect" WHERE time >= {start - 30}s AND time <= {end + 30}s GROUP BY "service"')
        times = {s["tags"]["service"]: [v[0] for v in s["values"]] for s in series}
        late = {svc for svc in services if not any(ts > end + 10 for ts in times.get(svc, []))}
        if not late or time.monotonic() > deadline:
            break
        time.sleep(5)
    expect(not late, f"no points after the outage from {sorted(late)}")
    report = []
    for svc in sorted(services):
        ts = sorted(times[svc])
        expect(len(ts) == len(set(ts)), f"{svc}: a point stored twice")
        inside = [x for x in ts if start <= x <= end]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        expect(inside and max(gaps) <= 12, f"{svc}: rounds missing around the outage (gaps {gaps}, {len(inside)} inside)")
        report.append(f"{svc} {len(inside)}")
    return f"{end - start} s outage: rounds kept and delivered once each ({', '.join(report)})"


# --- 7. data survives kill -9 of its server -------------------------------------------

PERSIST = os.path.join(WORK, "persist.json")


def wp_xmlrpc():
    import ssl
    import xmlrpc.client

    ctx = ssl.create_default_context(cafile=CA)
    return xmlrpc.client.ServerProxy(f"https://{LB}:5050/xmlrpc.php", context=ctx)


@phase("persist-write")
def write_wordpress_post_and_count_influx_points() -> str:
    title = f"Written before kill -9 {int(time.time())}"
    post_id = int(wp_xmlrpc().wp.newPost(
        1, "admin", secret("ft-wordpress", "admin-password"),
        {"post_title": title, "post_content": "It is still here.", "post_status": "publish"},
    ))
    r = get(f"https://{LB}:5050/?p={post_id}")
    expect(r.status_code == 200 and title in r.text, f"post {post_id}: {r.status_code}")
    deadline = time.monotonic() + 60
    while True:  # some points must be older than the mark
        before = time.time() - 5
        points = influx_query(f'SELECT count("buffer_size") FROM "internal_collect" WHERE time < {int(before)}s')
        if points or time.monotonic() > deadline:
            break
        time.sleep(3)
    expect(points, "no points in InfluxDB yet")
    count = points[0]["values"][0][1]
    with open(PERSIST, "w") as f:
        json.dump({"post_id": post_id, "title": title, "before": int(before), "points": count}, f)
    return f"post {post_id} published; {count} internal_collect points before {int(before)}"


@phase("persist-write")
def upload_ftps_file_to_keep() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        up = os.path.join(tmp, "kept.bin")
        with open(up, "wb") as f:
            f.write(os.urandom(100_000))
        out = lftp(f"put {up} -o kept.bin")
        expect(out.returncode == 0, f"lftp exited {out.returncode}: {(out.stdout + out.stderr)[-800:]}")
        with open(up, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    with open(PERSIST + ".ftps", "w") as f:
        f.write(digest)
    return "kept.bin uploaded"


@phase("persist-ftps")
def ftps_file_survived_restart() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        back = os.path.join(tmp, "kept.bin")
        out = lftp(f"get kept.bin -o {back}")
        expect(out.returncode == 0, f"lftp exited {out.returncode}: {(out.stdout + out.stderr)[-800:]}")
        with open(back, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    expect(digest == open(PERSIST + ".ftps").read(), "kept.bin changed")
    return "kept.bin downloaded unchanged"


@phase("persist-write")
def add_wordpress_user_in_wp_admin() -> str:
    """A user added as a site's admin adds one: wp-admin's Add New User form."""
    base = f"https://{LB}:5050"
    s = wp_login("admin", secret("ft-wordpress", "admin-password"))
    r = s.get(f"{base}/wp-admin/user-new.php", timeout=30)
    nonce = re.search(r'name="_wpnonce_create-user" value="([0-9a-f]+)"', r.text)
    expect(r.status_code == 200 and nonce is not None, f"user-new.php: {r.status_code}, no form nonce")
    assert nonce is not None
    login, password = f"kept{int(time.time())}", secrets.token_urlsafe(18)
    r = s.post(f"{base}/wp-admin/user-new.php", allow_redirects=False, timeout=30, data={
        "action": "createuser", "_wpnonce_create-user": nonce.group(1), "user_login": login,
        "email": f"{login}@example.org", "pass1": password, "pass2": password, "role": "author",
        "createuser": "Add New User"})
    expect(r.status_code == 302 and "users.php?update=add" in r.headers.get("Location", ""),
           f"Add New User answered {r.status_code} {r.headers.get('Location', '')}")
    wp_login(login, password)
    with open(PERSIST + ".wordpress-user", "w") as f:
        json.dump({"login": login, "password": password}, f)
    return f"author {login} added in wp-admin, logs in"


@phase("persist-wordpress-user")
def wordpress_user_added_before_logs_in() -> str:
    user = json.load(open(PERSIST + ".wordpress-user"))
    wp_login(user["login"], user["password"])
    return f"{user['login']} logs in with the password given in wp-admin"


@phase("persist-mysql")
def wordpress_post_survived_mysql_restart() -> str:
    state = json.load(open(PERSIST))
    r = get(f"https://{LB}:5050/?p={state['post_id']}")
    expect(r.status_code == 200 and state["title"] in r.text, f"post {state['post_id']}: {r.status_code}")
    return f"post {state['post_id']} still published"


@phase("persist-influxdb")
def influxdb_points_survived_restart() -> str:
    state = json.load(open(PERSIST))
    points = influx_query(
        f'SELECT count("buffer_size") FROM "internal_collect" WHERE time < {state["before"]}s')
    count = points[0]["values"][0][1] if points else 0
    expect(count == state["points"], f"{count} points before the restart's mark, were {state['points']}")
    return f"all {count} earlier points still there"


# --- scanners: testssl.sh on every TLS port, ssh-audit on 22 --------------------------

# Findings below this count as passing (testssl.sh's severities: OK, INFO,
# LOW, MEDIUM, HIGH, CRITICAL).
SCAN_FAIL_AT = "MEDIUM"


# The TLS ports scanned, with testssl.sh's options for each.
TLS_PORTS = {443: [], 5050: [], 5000: [], 21: ["-t", "ftp"]}


def testssl_verdict(port: int, report: str, out: subprocess.CompletedProcess) -> str:
    """testssl.sh's JSON report of LB:port: fails on any finding of
    SCAN_FAIL_AT or worse; prints its verdict lines."""
    expect(os.path.exists(report), f"testssl {port} wrote no report: {out.stdout[-800:]} {out.stderr[-400:]}")
    findings = json.load(open(report))
    order = ["OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    bad = [f for f in findings if f.get("severity") in order[order.index(SCAN_FAIL_AT):]]
    for f in findings:
        if f.get("id") in ("protocols", "SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "FS",
                           "cipherlist_OBSOLETED", "cipherlist_AVERAGE", "HSTS", "BREACH") or \
                f.get("severity") in ("LOW", *order[order.index(SCAN_FAIL_AT):]):
            print(f"      testssl {port}: {f['id']} [{f.get('severity')}] {f.get('finding', '')[:110]}")
    expect(not bad, f"testssl on {port}: " + "; ".join(f"{f['id']} [{f['severity']}] {f.get('finding')}" for f in bad))
    counts = {s: sum(1 for f in findings if f.get("severity") == s) for s in order}
    return f"{LB}:{port}: no finding of {SCAN_FAIL_AT} or worse ({counts})"


@phase("tls-scan")
def testssl_every_tls_port() -> str:
    """testssl.sh against each TLS port of the load balancer, trusting the
    generated CA, the four scans at once (each waits on handshakes more
    than on the CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        scans = {}
        for port, extra in TLS_PORTS.items():
            report = os.path.join(tmp, f"{port}.json")
            scans[port] = (report, subprocess.Popen(
                ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--add-ca", CA, "--ip", "one",
                 "--jsonfile", report, *extra, f"{LB}:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
        verdicts, failures = [], []
        for port, (report, scan) in scans.items():
            stdout, stderr = scan.communicate(timeout=900)
            done = subprocess.CompletedProcess(scan.args, scan.returncode, stdout, stderr)
            try:
                verdicts.append(testssl_verdict(port, report, done))
            except AssertionError as e:
                failures.append(str(e))
    expect(not failures, "; ".join(failures))
    return "; ".join(verdicts)


@phase("tls-scan")
def ssh_audit_22() -> str:
    out = subprocess.run(["ssh-audit", "--no-colors", "-p", "22", LB],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    lines = out.stdout.splitlines()
    # ssh-audit marks each finding [fail] or [warn] (older versions: (fail),
    # (warn)), and exits 0 only when there is neither.
    verdicts = [line for line in lines if any(m in line for m in ("[fail]", "[warn]", "(fail)", "(warn)"))]
    for line in lines:
        if line.startswith(("(gen)", "(kex)", "(key)", "(enc)", "(mac)", "(rec)")):
            print(f"      ssh-audit: {line}")
    expect(out.stdout.strip(), f"ssh-audit printed nothing: {out.stderr[-400:]}")
    expect(not verdicts, "ssh-audit: " + "; ".join(verdicts))
    expect(out.returncode == 0, f"ssh-audit exited {out.returncode}")
    return f"ssh-audit {LB}:22: no failure or warning ({len(lines)} lines, exit 0)"


# --- 5. ssh into the nginx pod ----------------------------------------------------------


SSH_OPTS = [
    "-o", f"UserKnownHostsFile={LOCAL}/known_hosts",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
]


@phase("ssh")
def ssh_login_with_generated_key() -> str:
    out = subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
         "-i", f"{LOCAL}/id_ed25519", f"ft@{LB}", "id -un; hostname"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    expect(out.returncode == 0, f"ssh exited {out.returncode}: {out.stderr.strip()}")
    expect(out.stdout.split() == ["ft", "nginx-0"], f"ssh said {out.stdout!r}")
    return "key login as ft on nginx-0 (host key checked)"


def ssh_with_password(password: str, command: str = "id -un") -> subprocess.CompletedProcess:
    """ssh as ft by password only (SSH_ASKPASS answers with `password`)."""
    with tempfile.TemporaryDirectory() as tmp:
        answer, askpass = os.path.join(tmp, "answer"), os.path.join(tmp, "askpass")
        with open(answer, "w") as f:
            f.write(password)
        with open(askpass, "w") as f:
            f.write(f"#!/bin/sh\ncat '{answer}'\n")
        os.chmod(askpass, 0o700)
        env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY="none")
        return subprocess.run(
            ["ssh", *SSH_OPTS, "-o", "PubkeyAuthentication=no",
             "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
             f"ft@{LB}", command],
            capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
        )


@phase("ssh")
def ssh_login_with_password() -> str:
    out = ssh_with_password(open(os.path.join(LOCAL, "ssh-password")).read().strip())
    expect(out.returncode == 0, f"ssh exited {out.returncode}: {out.stderr.strip()}")
    expect(out.stdout.strip() == "ft", f"ssh said {out.stdout!r}")
    return "password login as ft"


@phase("ssh")
def ssh_wrong_passwords_from_the_shared_address_lock_nobody_out() -> str:
    """Behind the load balancer every client has its address: OpenSSH 10's
    per-source penalties would refuse everyone after a few failures."""
    failures = 8
    for i in range(failures):
        out = ssh_with_password(f"wrong-{i}")
        expect(out.returncode == 255 and "Permission denied" in out.stderr,
               f"wrong password {i}: ssh exited {out.returncode}: {out.stderr.strip()}")
    started = time.monotonic()
    out = subprocess.run(
        ["ssh", *SSH_OPTS, "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
         "-i", f"{LOCAL}/id_ed25519", f"ft@{LB}", "id -un"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    expect(out.returncode == 0 and out.stdout.strip() == "ft",
           f"after {failures} wrong passwords, ft's key login: exit {out.returncode}: {out.stderr.strip()}")
    return f"{failures} wrong passwords refused, then ft logs in by key at once ({time.monotonic() - started:.1f} s)"


@phase("ssh-metrics")
def ssh_sessions_count_under_sshd() -> str:
    """OpenSSH 10 serves a session in sshd-session processes: the nginx pod's
    `sshd` figures must include them (a listener alone has 1 process)."""
    session = subprocess.Popen(
        ["ssh", *SSH_OPTS, "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
         "-i", f"{LOCAL}/id_ed25519", f"ft@{LB}", "sleep 100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    opened = int(time.time())
    try:
        # A round every 10 s; after a pod's start its first points may wait
        # in collect's buffer until InfluxDB takes them.
        deadline = time.monotonic() + 90
        while True:
            series = influx_query(
                f"SELECT max(pid_count) FROM procstat WHERE service = 'nginx' AND process_name = 'sshd'"
                f" AND time > {opened + 1}s")
            counted = series[0]["values"][0][1] if series and series[0].get("values") else None
            if counted and counted >= 3:
                return f"during one session, collect counted {counted} sshd processes (listener and sshd-session)"
            if session.poll() is not None:
                raise AssertionError(f"the ssh session ended: {session.stderr.read().decode()[-300:]}")
            expect(time.monotonic() < deadline, f"collect counted {counted} sshd processes during a session")
            time.sleep(2)
    finally:
        session.kill()
        session.wait()


# --- a real browser ---------------------------------------------------------------------

BROWSER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser.mjs")


def browser(scenario: str) -> str:
    """A scenario of browser.mjs: Chromium through the load balancer."""
    out = subprocess.run(["node", BROWSER, scenario], capture_output=True, text=True, timeout=900,
                         stdin=subprocess.DEVNULL)
    lines = out.stdout.splitlines()
    for line in lines:
        print(f"      {line}", flush=True)
    failed = [line for line in lines if line.startswith("FAIL")]
    expect(out.returncode == 0 and not failed,
           "; ".join(failed)[:3000] or f"exit {out.returncode}: {out.stderr[-1500:]}")
    return f"{len(lines)} steps in Chromium (screenshots in {os.path.join(WORK, 'browser')})"


@phase("browser-front")
def browser_front_page_and_its_links() -> str:
    return browser("front")


@phase("browser-wordpress")
def browser_author_publishes_a_post_with_an_uploaded_image() -> str:
    return browser("wordpress")


@phase("browser-verify")
def browser_visitor_sees_the_post_and_its_image() -> str:
    return browser("verify")


@phase("browser-phpmyadmin")
def browser_phpmyadmin_query_export_import() -> str:
    return browser("phpmyadmin")


def main() -> int:
    failed = 0
    for name in sys.argv[1:]:
        for check in REGISTRY[name].checks:
            started = time.monotonic()
            try:
                detail = check()
                print(f"PASS  {check.__name__} ({time.monotonic() - started:.1f} s) {detail or ''}", flush=True)
            except Exception as e:  # a failed check is reported, the others still run
                failed += 1
                print(f"FAIL  {check.__name__}: {e}", flush=True)
                traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
