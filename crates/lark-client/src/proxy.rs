//! Proxy control: an explicit proxy (`http://`, `https://`, `socks5://`,
//! `socks5h://`) honouring `NO_PROXY`, no proxy at all (the default: ambient
//! `HTTPS_PROXY` and friends are ignored), or the environment when asked.
//!
//! REST traffic goes through reqwest's proxy support; the long connection
//! dials its TCP stream itself here (HTTP `CONNECT` tunnel or SOCKS5
//! handshake) and then runs the WebSocket handshake over it.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::{Host, Url};

use crate::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    Direct,
    Explicit(Url),
    Env,
}

/// Which proxy the client uses, for REST and for the long connection alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    mode: Mode,
    /// Explicit bypass list; `None` reads `NO_PROXY` / `no_proxy`.
    no_proxy: Option<String>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings::direct()
    }
}

impl ProxySettings {
    /// No proxy, whatever the environment says.
    pub fn direct() -> ProxySettings {
        ProxySettings {
            mode: Mode::Direct,
            no_proxy: None,
        }
    }

    /// This proxy for everything not matched by `NO_PROXY`.
    pub fn explicit(url: &str) -> Result<ProxySettings, Error> {
        let parsed = Url::parse(url.trim())
            .map_err(|e| Error::Config(format!("proxy URL {:?}: {e}", redact(url))))?;
        match parsed.scheme() {
            "http" | "https" | "socks5" | "socks5h" => {}
            other => {
                return Err(Error::Config(format!(
                    "proxy scheme {other:?}: use http://, https://, socks5:// or socks5h://"
                )))
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config(format!(
                "proxy URL {:?} has no host",
                redact(url)
            )));
        }
        Ok(ProxySettings {
            mode: Mode::Explicit(parsed),
            no_proxy: None,
        })
    }

    /// The ambient `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`.
    pub fn from_env() -> ProxySettings {
        ProxySettings {
            mode: Mode::Env,
            no_proxy: None,
        }
    }

    /// Sets the bypass list (comma-separated hosts, domain suffixes, IPs,
    /// CIDRs, or `*`); `None` reads `NO_PROXY` from the environment.
    pub fn with_no_proxy(mut self, list: Option<String>) -> ProxySettings {
        self.no_proxy = list;
        self
    }

    fn no_proxy_list(&self) -> String {
        self.no_proxy
            .clone()
            .unwrap_or_else(|| env_any(&["NO_PROXY", "no_proxy"]).unwrap_or_default())
    }

    /// Applies these settings to a reqwest client builder.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, Error> {
        match &self.mode {
            Mode::Direct => Ok(builder.no_proxy()),
            Mode::Env => Ok(builder),
            Mode::Explicit(url) => {
                let proxy = reqwest::Proxy::all(url.as_str())
                    .map_err(|e| Error::Config(format!("proxy: {e}")))?
                    .no_proxy(reqwest::NoProxy::from_string(&self.no_proxy_list()));
                Ok(builder.no_proxy().proxy(proxy))
            }
        }
    }

    /// A reqwest client with these settings and a total request timeout
    /// (for calls made before an app exists, such as app registration).
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::Client, Error> {
        self.apply(reqwest::Client::builder().timeout(timeout))?
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))
    }

    /// The proxy to use for a WebSocket URL, if any.
    pub(crate) fn for_ws(&self, target: &Url) -> Result<Option<Url>, Error> {
        let candidate = match &self.mode {
            Mode::Direct => return Ok(None),
            Mode::Explicit(url) => url.clone(),
            Mode::Env => {
                let names: &[&str] = if target.scheme() == "wss" {
                    &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
                } else {
                    &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
                };
                match env_any(names) {
                    Some(v) => ProxySettings::explicit(&v).and_then(|p| match p.mode {
                        Mode::Explicit(u) => Ok(u),
                        _ => Err(Error::Config("proxy from environment".into())),
                    })?,
                    None => return Ok(None),
                }
            }
        };
        let bypass = NoProxy::parse(&self.no_proxy_list());
        Ok((!target.host().is_some_and(|h| bypass.matches(&h))).then_some(candidate))
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

/// A URL with any userinfo replaced, for error messages (also when the URL
/// does not parse).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A parsed `NO_PROXY` list.
#[derive(Debug, Default)]
pub(crate) struct NoProxy {
    all: bool,
    domains: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
            } else if let Some(net) = parse_net(entry) {
                out.nets.push(net);
            } else {
                let host = entry.trim_start_matches("*.").trim_start_matches('.');
                // Drop a `:port` suffix; ports are not distinguished.
                let host = host.split(':').next().unwrap_or(host);
                out.domains.push(host.to_ascii_lowercase());
            }
        }
        out
    }

    pub fn matches(&self, host: &Host<&str>) -> bool {
        if self.all {
            return true;
        }
        match host {
            Host::Domain(d) => {
                let d = d.to_ascii_lowercase();
                self.domains.iter().any(|suffix| {
                    d == *suffix
                        || (d.ends_with(suffix.as_str())
                            && d.as_bytes().get(d.len() - suffix.len() - 1) == Some(&b'.'))
                })
            }
            Host::Ipv4(ip) => self.ip_matches(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.ip_matches(IpAddr::V6(*ip)),
        }
    }

    fn ip_matches(&self, ip: IpAddr) -> bool {
        self.nets
            .iter()
            .any(|(net, prefix)| in_net(ip, *net, *prefix))
    }
}

fn parse_net(entry: &str) -> Option<(IpAddr, u8)> {
    let entry = entry.trim_start_matches('[').trim_end_matches(']');
    match entry.split_once('/') {
        Some((ip, prefix)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (prefix <= max).then_some((ip, prefix))
        }
        None => {
            let ip: IpAddr = entry.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Opens a TCP stream to `host:port`, directly or through `proxy`.
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    proxy: Option<&Url>,
) -> std::io::Result<TcpStream> {
    let Some(proxy) = proxy else {
        return TcpStream::connect((host, port)).await;
    };
    let proxy_host = proxy.host_str().unwrap_or_default();
    let proxy_host = proxy_host.trim_start_matches('[').trim_end_matches(']');
    match proxy.scheme() {
        "http" => {
            let mut stream =
                TcpStream::connect((proxy_host, proxy.port_or_known_default().unwrap_or(80)))
                    .await?;
            http_connect(&mut stream, host, port, proxy).await?;
            Ok(stream)
        }
        "socks5" | "socks5h" => {
            let mut stream =
                TcpStream::connect((proxy_host, proxy.port().unwrap_or(1080))).await?;
            socks5_connect(&mut stream, host, port, proxy).await?;
            Ok(stream)
        }
        other => Err(io_err(format!(
            "{other}:// proxies are not supported for the long connection (use http:// or socks5://)"
        ))),
    }
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

fn credentials(proxy: &Url) -> Option<(String, String)> {
    (!proxy.username().is_empty()).then(|| {
        (
            crate::download::percent_decode(proxy.username()),
            crate::download::percent_decode(proxy.password().unwrap_or_default()),
        )
    })
}

/// Host for an authority (`[v6]:port` for IPv6 literals).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn http_connect(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    proxy: &Url,
) -> std::io::Result<()> {
    let target = authority(host, port);
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = credentials(proxy) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    // Read the answer head byte by byte so that nothing after it is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io_err("proxy CONNECT answer too long".into()));
        }
        let b = stream.read_u8().await?;
        head.push(b);
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(io_err(format!("proxy refused CONNECT: {status_line}")))
    }
}

async fn socks5_connect(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    proxy: &Url,
) -> std::io::Result<()> {
    let creds = credentials(proxy);
    let greeting: &[u8] = if creds.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    stream.write_all(greeting).await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    match (choice, &creds) {
        ([5, 0], _) => {}
        ([5, 2], Some((user, pass))) => socks5_auth(stream, user, pass).await?,
        _ => return Err(io_err(format!("SOCKS5 proxy refused: {choice:?}"))),
    }
    let mut req = vec![5, 1, 0];
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    let ip = match literal {
        Some(ip) => Some(ip),
        // socks5:// resolves locally; socks5h:// lets the proxy resolve.
        None if proxy.scheme() == "socks5" => tokio::net::lookup_host((host, port))
            .await?
            .next()
            .map(|a| a.ip()),
        None => None,
    };
    match ip {
        Some(IpAddr::V4(v4)) => {
            req.push(1);
            req.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            req.push(4);
            req.extend_from_slice(&v6.octets());
        }
        None => {
            let name = host.as_bytes();
            let len = u8::try_from(name.len())
                .map_err(|_| io_err("host name too long for SOCKS5".into()))?;
            req.push(3);
            req.push(len);
            req.extend_from_slice(name);
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&req).await?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] != 5 || head[1] != 0 {
        return Err(io_err(format!("SOCKS5 connect failed (reply {})", head[1])));
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(stream.read_u8().await?),
        other => return Err(io_err(format!("SOCKS5 reply address type {other}"))),
    };
    let mut rest = vec![0u8; addr_len + 2];
    stream.read_exact(&mut rest).await?;
    Ok(())
}

async fn socks5_auth(stream: &mut TcpStream, user: &str, pass: &str) -> std::io::Result<()> {
    let (u, p) = (user.as_bytes(), pass.as_bytes());
    let (ul, pl) = (
        u8::try_from(u.len()).map_err(|_| io_err("SOCKS5 user too long".into()))?,
        u8::try_from(p.len()).map_err(|_| io_err("SOCKS5 password too long".into()))?,
    );
    let mut msg = vec![1, ul];
    msg.extend_from_slice(u);
    msg.push(pl);
    msg.extend_from_slice(p);
    stream.write_all(&msg).await?;
    let mut answer = [0u8; 2];
    stream.read_exact(&mut answer).await?;
    if answer[1] != 0 {
        return Err(io_err("SOCKS5 authentication failed".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host<String> {
        Host::parse(s).unwrap()
    }

    fn matches(list: &str, h: &str) -> bool {
        let h = host(h);
        let borrowed = match &h {
            Host::Domain(d) => Host::Domain(d.as_str()),
            Host::Ipv4(a) => Host::Ipv4(*a),
            Host::Ipv6(a) => Host::Ipv6(*a),
        };
        NoProxy::parse(list).matches(&borrowed)
    }

    #[test]
    fn no_proxy_matching() {
        assert!(matches("*", "open.feishu.cn"));
        assert!(matches("feishu.cn", "open.feishu.cn"));
        assert!(matches(".feishu.cn", "open.feishu.cn"));
        assert!(matches("feishu.cn", "feishu.cn"));
        assert!(!matches("feishu.cn", "notfeishu.cn"));
        assert!(matches("localhost, 127.0.0.1", "127.0.0.1"));
        assert!(matches("10.0.0.0/8", "10.2.3.4"));
        assert!(!matches("10.0.0.0/8", "11.2.3.4"));
        assert!(matches("::1", "[::1]"));
        assert!(!matches("", "open.feishu.cn"));
    }

    #[test]
    fn explicit_proxy_validation() {
        assert!(ProxySettings::explicit("http://127.0.0.1:3128").is_ok());
        assert!(ProxySettings::explicit("socks5h://u:p@proxy:1080").is_ok());
        let err = ProxySettings::explicit("ftp://x").unwrap_err();
        assert!(err.to_string().contains("scheme"));
        let err = ProxySettings::explicit("http://u:hunter2@").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn ws_proxy_respects_no_proxy() {
        let p = ProxySettings::explicit("http://127.0.0.1:3128")
            .unwrap()
            .with_no_proxy(Some("internal.example".into()));
        let inside = Url::parse("wss://a.internal.example/ws").unwrap();
        let outside = Url::parse("wss://msg-frontier.feishu.cn/ws").unwrap();
        assert_eq!(p.for_ws(&inside).unwrap(), None);
        assert!(p.for_ws(&outside).unwrap().is_some());
        assert_eq!(ProxySettings::direct().for_ws(&outside).unwrap(), None);
    }

    #[test]
    fn userinfo_is_percent_decoded() {
        let u = Url::parse("http://us%40er:p%3Ass@h:1").unwrap();
        assert_eq!(
            credentials(&u),
            Some(("us@er".to_string(), "p:ss".to_string()))
        );
    }
}
