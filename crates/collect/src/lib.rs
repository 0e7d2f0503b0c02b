//! `collect`: the metrics agent of every pod.
//!
//! It runs under `supervise` in each container, gathers the container's own
//! figures (cgroup, network, disks, its supervised programs) and those of the
//! services it is configured for (nginx, php-fpm, MariaDB, InfluxDB, any
//! Prometheus text endpoint) every `interval`, and writes them to InfluxDB 1.x
//! as line protocol: batched, gzip-compressed, through a bounded in-memory
//! buffer that rides out an InfluxDB outage and drops the oldest points first
//! when full.
//!
//! Started as `collect [--config /etc/collect.toml] [--check-config]`; it
//! reads its TOML config (see [`config`] for every key and its default), the
//! password files it names, `/sys/fs/cgroup`, `/proc` and the local status
//! endpoints; it writes only to InfluxDB's `/write` (and `/query` once at
//! start, for `CREATE DATABASE`) and logs to stderr.
//!
//! # Measurements
//!
//! Names follow Telegraf's input plugins, so dashboards written for Telegraf
//! data work. **Every point carries the tags `service` and `pod`** (from the
//! config, else the `SERVICE` / `POD_NAME` environment variables, else the
//! host name for `pod`) plus any `[tags]` of the config; the table lists the other tags.
//! Integer fields are written as integers (`i` suffix), others as floats.
//! Counters are cumulative since the process or cgroup started: dashboards use
//! `non_negative_derivative(...)`.
//!
//! | measurement | tags | fields (unit) |
//! |---|---|---|
//! | `docker_container_cpu` | `cpu=cpu-total` | `usage_total` (ns, counter), `usage_in_usermode` (ns, counter), `usage_in_kernelmode` (ns, counter), `usage_percent` (float, % of one core over the last interval; absent on the first gather), `throttling_periods`, `throttling_throttled_periods` (counters), `throttling_throttled_time` (ns, counter) |
//! | `docker_container_mem` | — | `usage` (bytes, cgroup v2 `memory.current` / v1 `memory.usage_in_bytes`), `limit` (bytes; absent when unlimited), `usage_percent` (float, % of `limit`; absent when unlimited), `anon`, `file`, `kernel_stack`, `sock`, `shmem` (bytes, from `memory.stat`; v1: `anon` = `total_rss`, `file` = `total_cache`), `max_usage` (bytes, v2 `memory.peak` / v1 `memory.max_usage_in_bytes`, when the kernel has it) |
//! | `docker_container_pids` | — | `current` (count), `limit` (count; absent when unlimited) |
//! | `docker_container_blkio` | `device` (`MAJ:MIN`, or `total`) | `io_service_bytes_recursive_read`, `io_service_bytes_recursive_write` (bytes, counters), `io_serviced_recursive_read`, `io_serviced_recursive_write` (operations, counters); v2 from `io.stat`, v1 from `blkio.throttle.io_service{_bytes,d}_recursive`, which recent kernels (seen on 6.18) fill only for devices with a throttle rule, so v1 figures may stay 0 |
//! | `net` | `interface` | `bytes_recv`, `bytes_sent`, `packets_recv`, `packets_sent`, `err_in`, `err_out`, `drop_in`, `drop_out` (counters, from `/proc/net/dev`; `lo` excluded unless configured) |
//! | `disk` | `path`, `device`, `fstype` | `total`, `free`, `used` (bytes), `used_percent` (float, %), `inodes_total`, `inodes_free`, `inodes_used` (count) |
//! | `procstat` | `process_name` (the configured program name) | `pid` (the program's main/oldest pid), `pid_count`, `cpu_usage` (float, % of one core over the last interval, summed over the program's processes), `cpu_time_user`, `cpu_time_system` (float, seconds, counters), `memory_rss`, `memory_vms` (bytes, summed), `num_threads`, `num_fds` (summed), `created_at` (ns since the epoch, oldest process), `uptime` (s) |
//! | `procstat_lookup` | `process_name` | `pid_count` (processes found), `running` (1 if at least one was found, else 0) |
//! | `nginx` | `server`, `port` | `active`, `reading`, `writing`, `waiting` (connections, gauges), `accepts`, `handled`, `requests` (counters) |
//! | `phpfpm` | `pool`, `url` | `start_since` (s), `accepted_conn` (counter), `listen_queue`, `max_listen_queue`, `listen_queue_len`, `idle_processes`, `active_processes`, `total_processes`, `max_active_processes`, `max_children_reached` (counter), `slow_requests` (counter) |
//! | `mysql` | `server` (`host:port`) | one field per numeric row of `SHOW GLOBAL STATUS`, name lowercased (e.g. `questions`, `queries`, `threads_connected`, `threads_running`, `connections`, `aborted_connects`, `bytes_received`, `bytes_sent`, `slow_queries`, `uptime`, `innodb_buffer_pool_bytes_data`, `com_select`, ...); `ON`/`OFF`/`YES`/`NO` become 1/0; other text rows are skipped |
//! | `influxdb_<section>` (e.g. `influxdb_httpd`, `influxdb_write`, `influxdb_shard`, `influxdb_database`, `influxdb_runtime`, `influxdb_queryExecutor`) | `url` plus the section's own tags (`database`, `engine`, `id`, `path`, `bind`, ...) | the section's `values` as floats, names as InfluxDB reports them (e.g. `influxdb_httpd.pointsWrittenOK`, `influxdb_httpd.req`, `influxdb_database.numSeries`) |
//! | `influxdb_memstats` | `url` | Go runtime memory figures as floats, in snake case: `alloc`, `total_alloc`, `sys`, `heap_alloc`, `heap_sys`, `heap_idle`, `heap_inuse`, `heap_released`, `heap_objects`, `num_gc`, `pause_total_ns`, ... (bytes / counts) |
//! | `influxdb` | `url` | `n_shards` (count of `shard` sections) |
//! | `prometheus` | `url` plus the sample's labels (`le` / `quantile` for histogram / summary samples) | one field per metric name, as exposed (float), e.g. `ftpsd_sessions`, `grafana_http_request_duration_seconds_bucket`, `..._sum`, `..._count`; samples with the same label set share one point |
//! | `internal_collect` | — | `gather_time_ns` (ns, the last gather), `metrics_gathered` (points, counter), `input_errors` (counter), `buffer_size` (points waiting), `buffer_limit` (points), `metrics_written` (points acknowledged by InfluxDB, counter), `metrics_dropped` (points dropped because the buffer was full, counter), `write_errors` (failed write requests, counter) |
//!
//! Every input runs only when configured; an input whose source is down logs
//! once (and again when it recovers) and is counted in
//! `internal_collect.input_errors`; the other inputs go on.
//!
//! Timestamps are the start of each gather rounded down to the interval, so
//! every input's points of one round share one timestamp.

pub mod agent;
pub mod buffer;
pub mod config;
pub mod inputs;
pub mod line_protocol;
pub mod output;

pub use agent::run;
pub use config::Config;
