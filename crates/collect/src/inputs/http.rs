//! What every HTTP input shares: the `ca_file`/`server_name` options and
//! their checks, and the client that fetches an endpoint with them (see
//! "HTTPS" in the config documentation).

use std::path::Path;
use std::time::Duration;

use crate::inputs::influxdb::InfluxdbInput;

/// An input fetching HTTP(S) URLs.
pub trait HttpInput {
    fn urls(&self) -> Vec<&str>;
    fn tls(&self) -> Tls<'_>;
}

/// Implements [`HttpInput`] for an input with `ca_file` and `server_name`
/// fields and one `url`, or with the URLs that `|input| expr` lists.
macro_rules! impl_http_input {
    ($input:ty) => {
        $crate::inputs::http::impl_http_input!($input, |input| vec![input.url.as_str()]);
    };
    ($input:ty, |$this:ident| $urls:expr) => {
        impl $crate::inputs::http::HttpInput for $input {
            fn urls(&self) -> Vec<&str> {
                let $this = self;
                $urls
            }
            fn tls(&self) -> $crate::inputs::http::Tls<'_> {
                $crate::inputs::http::Tls {
                    ca_file: &self.ca_file,
                    server_name: &self.server_name,
                }
            }
        }
    };
}
pub(crate) use impl_http_input;

/// Declares the options of an input that reads one status page: its `url`
/// (defaulting to `$default_url`) and the TLS options, nothing else.
macro_rules! status_page_input {
    ($(#[$doc:meta])* $input:ident, $default_url:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $input {
            pub url: String,
            pub ca_file: std::path::PathBuf,
            pub server_name: String,
        }

        impl Default for $input {
            fn default() -> Self {
                $input {
                    url: $default_url.into(),
                    ca_file: std::path::PathBuf::new(),
                    server_name: String::new(),
                }
            }
        }

        $crate::inputs::http::impl_http_input!($input);
    };
}
pub(crate) use status_page_input;

/// Checks an HTTP input's URLs and TLS options; the error names the key.
pub fn validate(key: &'static str, input: &dyn HttpInput) -> Result<(), (String, String)> {
    let k = |suffix: &str| format!("{key}.{suffix}");
    for u in input.urls() {
        check_url(u).map_err(|m| {
            (
                k(if key.ends_with("prometheus") {
                    "urls"
                } else {
                    "url"
                }),
                m,
            )
        })?;
    }
    check_tls(input.tls(), input.urls()).map_err(|(suffix, m)| (k(suffix), m))
}

/// How an HTTP input checks its `https://` endpoints (see "HTTPS" above).
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    /// PEM bundle trusted instead of the built-in roots; empty = built-in roots.
    pub ca_file: &'a Path,
    /// Name the certificate must carry; empty = the URL's host.
    pub server_name: &'a str,
}

impl Tls<'_> {
    pub fn is_default(&self) -> bool {
        self.ca_file.as_os_str().is_empty() && self.server_name.is_empty()
    }
}

/// Reads a PEM bundle of CA certificates; an error says what is wrong.
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

pub fn check_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        Ok(url) => Err(format!("{u:?}: scheme {} is not http(s)", url.scheme())),
        Err(e) => Err(format!("{u:?}: {e}")),
    }
}

/// The URL's host when it is an IP address.
pub fn url_ip(url: &reqwest::Url) -> Option<std::net::IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A `ca_file` that can be read and holds certificates; a `server_name`
/// only with URLs whose host is an IP address (the address to connect to).
fn check_tls<'u>(
    tls: Tls<'_>,
    urls: impl IntoIterator<Item = &'u str>,
) -> Result<(), (&'static str, String)> {
    let (ca_key, name_key) = ("ca_file", "server_name");
    let bad = |k: &'static str, m: String| (k, m);
    if !tls.ca_file.as_os_str().is_empty() {
        read_ca_file(tls.ca_file).map_err(|m| bad(ca_key, m))?;
    }
    if !tls.server_name.is_empty() {
        if reqwest::Url::parse(&format!("https://{}/", tls.server_name))
            .ok()
            .and_then(|u| u.domain().map(str::to_owned))
            .is_none()
        {
            return Err(bad(
                name_key,
                format!("{:?} is not a DNS name", tls.server_name),
            ));
        }
        for u in urls {
            let ip = reqwest::Url::parse(u)
                .ok()
                .and_then(|url| url_ip(&url))
                .is_some();
            if !ip {
                return Err(bad(
                    name_key,
                    format!("{u:?}: with server_name, the URL's host must be an IP address"),
                ));
            }
        }
    }
    Ok(())
}

pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(1)
}

/// One URL an HTTP input fetches, with the client that checks its
/// certificate as the input's `ca_file` and `server_name` say.
#[derive(Debug)]
pub struct Endpoint {
    client: reqwest::Client,
    /// As configured: the `url` tag and error messages.
    pub url: String,
    /// What is requested: `url` with the host replaced by `server_name`,
    /// which the client resolves to the configured host's address.
    request_url: reqwest::Url,
}

impl Endpoint {
    pub fn new(
        shared: &reqwest::Client,
        timeout: Duration,
        url: &str,
        tls: Tls<'_>,
    ) -> Result<Self, String> {
        let mut request_url = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if tls.is_default() {
            return Ok(Endpoint {
                client: shared.clone(),
                url: url.to_string(),
                request_url,
            });
        }
        let mut b = http_client(timeout);
        if !tls.ca_file.as_os_str().is_empty() {
            // The pod's endpoints are signed by the cluster's CA: trust
            // that alone, not every public CA too.
            b = b.tls_built_in_root_certs(false);
            for cert in read_ca_file(tls.ca_file).map_err(|e| format!("ca_file: {e}"))? {
                b = b.add_root_certificate(cert);
            }
        }
        if !tls.server_name.is_empty() {
            let ip = url_ip(&request_url).ok_or_else(|| {
                format!("server_name: {url:?}: the URL's host must be an IP address")
            })?;
            request_url
                .set_host(Some(tls.server_name))
                .map_err(|e| format!("server_name {:?}: {e}", tls.server_name))?;
            // Port 0: the URL's port is used.
            b = b.resolve(tls.server_name, std::net::SocketAddr::new(ip, 0));
        }
        Ok(Endpoint {
            client: b.build().map_err(|e| format!("{url}: {e}"))?,
            url: url.to_string(),
            request_url,
        })
    }
}

pub async fn fetch(endpoint: &Endpoint, auth: Option<&InfluxdbInput>) -> Result<String, String> {
    let url = &endpoint.url;
    let mut req = endpoint.client.get(endpoint.request_url.clone());
    if let Some(a) = auth.filter(|a| !a.username.is_empty()) {
        let password = if a.password_file.as_os_str().is_empty() {
            a.password.clone()
        } else {
            daemon::secret::read(&a.password_file).map_err(|e| e.to_string())?
        };
        req = req.basic_auth(&a.username, Some(password));
    }
    let resp = req.send().await.map_err(|e| {
        let mut m = format!("{url}: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            m.push_str(&format!(": {c}"));
            cause = c.source();
        }
        m
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    resp.text().await.map_err(|e| format!("{url}: {e}"))
}
