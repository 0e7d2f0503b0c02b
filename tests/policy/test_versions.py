"""Policy test of what the stack test cannot run at the images' versions.

- InfluxDB: the image runs 1.13.2, the stack test Debian's 1.6.7. Every key
  of the image's influxdb.conf and every flag of `influx` / `influxd` the
  repository uses must be one that 1.13 defines, as listed (with the source
  it was read from) in tests/policy/influxdb-1.13.txt.
- Grafana: the image runs Grafana 12.0, which cannot run here at all. Its
  config must keep it from fetching anything at start (plugins, the plugin
  signing key, update checks, usage reports): the pod has no internet.
"""

import configparser
import pathlib
import re
import shlex
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
FACTS = ROOT / "tests/policy/influxdb-1.13.txt"
INFLUXDB_CONF = ROOT / "docker/influxdb/rootfs/etc/influxdb.conf"
GRAFANA_INI = ROOT / "docker/grafana/rootfs/etc/grafana.ini"
# Where influx and influxd are run: the image (its build, its programs, its
# backup and restore script) and the stack test's own reads in the pod.
INFLUX_USERS = ["docker/influxdb/rootfs/usr/local/bin/ft-data", "docker/influxdb/Dockerfile",
                "docker/influxdb/supervise.toml", "tests/stack/scenarios.py"]


def facts(kind: str) -> set[str]:
    return {line.split(" ", 1)[1] for line in FACTS.read_text().splitlines()
            if line.startswith(kind + " ")}


def flattened_keys(table: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        if isinstance(value, dict):
            keys += flattened_keys(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for entry in value:  # [[section]]
                keys += flattened_keys(entry, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def test_every_influxdb_conf_key_is_one_influxdb_1_13_defines():
    known = facts("key")
    used = flattened_keys(tomllib.loads(INFLUXDB_CONF.read_text()))
    assert used, INFLUXDB_CONF
    unknown = [k for k in used if k not in known]
    assert not unknown, f"{INFLUXDB_CONF.name}: not keys of InfluxDB 1.13 (per {FACTS.relative_to(ROOT)}): {unknown}"


def influx_invocations() -> list[tuple[str, str, list[str]]]:
    """(file, command, flags) of every influx / influxd command line found."""
    found = []
    for name in INFLUX_USERS:
        text = (ROOT / name).read_text()
        if name.endswith(".toml"):
            for program in tomllib.loads(text).get("program", []):
                argv = program.get("command", [])
                if argv and argv[0].rsplit("/", 1)[-1] in ("influx", "influxd"):
                    found.append((name, argv[0].rsplit("/", 1)[-1], [a for a in argv[1:] if a.startswith("-")]))
            continue
        for m in re.finditer(r"(?<![\w/.-])(?:/usr/bin/)?(influxd?)((?: +[^\s;|&)'\"]+)*)", text):
            if text[:m.start()].endswith("-name "):  # a file name in find(1), not a command
                continue
            words = m.group(2).split()
            command = m.group(1)
            if command == "influxd" and words[:1] in (["backup"], ["restore"], ["version"]):
                command += f" {words.pop(0)}"
            flags = [w for w in words if re.fullmatch(r"-[A-Za-z][\w-]*", w)]
            if flags or command.startswith("influxd "):
                found.append((name, command, flags))
    return found


def test_every_influx_and_influxd_flag_used_is_one_influxdb_1_13_defines():
    known = facts("flag")
    found = influx_invocations()
    commands = {command for _, command, _ in found}
    # The scan must see what the repository is known to run.
    assert {"influx", "influxd", "influxd backup", "influxd restore"} <= commands, found
    unknown = [(name, command, flag) for name, command, flags in found for flag in flags
               if f"{command} {flag}" not in known]
    assert not unknown, f"flags InfluxDB 1.13 does not define (per {FACTS.relative_to(ROOT)}): {unknown}"


def test_no_influx_password_on_a_command_line():
    for name in INFLUX_USERS:
        for _, command, flags in (i for i in influx_invocations() if i[0] == name):
            assert "-password" not in flags, f"{name}: {command} -password puts the secret on its command line"


def test_grafana_fetches_nothing_at_start():
    ini = configparser.ConfigParser(comment_prefixes=(";", "#"), interpolation=None)
    ini.read_string(GRAFANA_INI.read_text())

    def value(section: str, key: str) -> str | None:
        return ini.get(section, key, fallback=None)

    wanted = {
        ("plugins", "preinstall_disabled"): "true",  # else the Drilldown apps install at every start
        ("plugins", "public_key_retrieval_disabled"): "true",  # the signing key from grafana.com
        ("analytics", "reporting_enabled"): "false",
        ("analytics", "check_for_updates"): "false",
        ("analytics", "check_for_plugin_updates"): "false",
    }
    wrong = {f"[{s}] {k}": value(s, k) for (s, k), v in wanted.items() if value(s, k) != v}
    assert not wrong, f"{GRAFANA_INI.name}: {wrong}, wanted {wanted}"
    assert not value("plugins", "preinstall"), "[plugins] preinstall names plugins to download"
    assert not shlex.split(value("plugins", "preinstall_async") or "true") == ["false"]
