//! Files and images the agent asks us to send: checked (local regular file
//! within the platform's size limits, or an allowlisted http(s) URL),
//! fetched with a size cap, uploaded, and sent after the text, each once.

use std::path::{Path, PathBuf};

use lark_client::OutgoingMessage;

use super::notes::short_reason;
use super::send::Replier;
use crate::agent::{AttachmentKind, OutboundMedia};
use crate::render::{self, Target};

/// Largest image the platform accepts (`POST /im/v1/images`).
pub const IMAGE_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Largest file the platform accepts (`POST /im/v1/files`).
pub const FILE_MAX_BYTES: u64 = 30 * 1024 * 1024;
/// Longest file name sent.
const NAME_MAX_CHARS: usize = 100;

/// Where the bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A local regular file.
    Path(PathBuf),
    /// An allowlisted http(s) URL.
    Url(String),
}

/// A media item that passed the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Position among the agent's media (its uuid).
    pub ordinal: usize,
    /// Image or file.
    pub kind: AttachmentKind,
    /// File name shown.
    pub name: String,
    /// Where to read it.
    pub source: Source,
    /// Size cap for its kind.
    pub cap: u64,
}

/// Checks every item; returns those to send and, for each refused one, a
/// line for the reply saying what was not sent and why (also logged).
pub(crate) async fn check(
    account: &str,
    media: &[OutboundMedia],
    allowlist: &[String],
) -> (Vec<Ready>, Vec<String>) {
    let mut ready = Vec::new();
    let mut notes = Vec::new();
    for (ordinal, m) in media.iter().enumerate() {
        let name = display_name(m);
        match check_one(m, allowlist).await {
            Ok(source) => ready.push(Ready {
                ordinal,
                kind: m.kind,
                name,
                source,
                cap: cap_for(m.kind),
            }),
            Err(why) => {
                tracing::warn!("[lark] [{account}] not sending {}: {why}", m.source);
                notes.push(format!("⚠️ Not sent: {} ({why})", short_reason(&name)));
            }
        }
    }
    (ready, notes)
}

async fn check_one(m: &OutboundMedia, allowlist: &[String]) -> Result<Source, String> {
    let source = m.source.trim();
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return if url_allowed(source, allowlist) {
            Ok(Source::Url(source.to_string()))
        } else {
            Err("URL not in the media allowlist".into())
        };
    }
    if lower.contains("://") && !lower.starts_with("file://") {
        return Err("only local files and http(s) URLs can be sent".into());
    }
    let path = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| format!("cannot read the file: {}", e.kind()))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let cap = cap_for(m.kind);
    if meta.len() == 0 {
        return Err("the file is empty".into());
    }
    if meta.len() > cap {
        return Err(format!("larger than {} MB", cap / (1024 * 1024)));
    }
    Ok(Source::Path(path))
}

/// Whether `url` starts with an allowlist entry at a boundary: the entry ends
/// with `/`, or the URL continues with `/`, `?`, `#` or ends there (so
/// `https://a.example` does not admit `https://a.example.evil.com` or
/// `https://a.example@evil.com`).
pub(crate) fn url_allowed(url: &str, allowlist: &[String]) -> bool {
    allowlist.iter().any(|prefix| {
        let p = prefix.trim();
        let scheme_ok = {
            let lower = p.to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        };
        scheme_ok
            && url.len() >= p.len()
            && url.is_char_boundary(p.len())
            && url[..p.len()].eq_ignore_ascii_case(p)
            && (p.ends_with('/')
                || url[p.len()..].is_empty()
                || url[p.len()..].starts_with(['/', '?', '#']))
    })
}

fn cap_for(kind: AttachmentKind) -> u64 {
    match kind {
        AttachmentKind::Image => IMAGE_MAX_BYTES,
        _ => FILE_MAX_BYTES,
    }
}

/// The name to show: the agent's, else the path's or URL's last segment;
/// no directories or control characters, at most [`NAME_MAX_CHARS`].
pub(crate) fn display_name(m: &OutboundMedia) -> String {
    let raw = match &m.name {
        Some(n) if !n.trim().is_empty() => n.clone(),
        _ => {
            let s = m.source.split(['?', '#']).next().unwrap_or("");
            s.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        }
    };
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        match m.kind {
            AttachmentKind::Image => "image".into(),
            _ => "file".into(),
        }
    } else {
        cleaned
    }
}

/// `file_type` of an upload, from the name's extension.
pub(crate) fn file_type(name: &str) -> &'static str {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "opus" => "opus",
        "pdf" => "pdf",
        "doc" | "docx" => "doc",
        "xls" | "xlsx" => "xls",
        "ppt" | "pptx" => "ppt",
        // An mp4 upload may only be sent as a `media` message, which needs a
        // cover image; as a generic file it can be sent as `file`.
        _ => "stream",
    }
}

/// Fetches, uploads and sends each item (skipping those an earlier attempt
/// sent); failures end in one short message listing them.
pub(crate) async fn send(r: &mut Replier<'_>, ready: Vec<Ready>) {
    let mut failed = Vec::new();
    for item in ready {
        let uuid = render::part_uuid(&format!("{}:media", r.plan.uuid_base), item.ordinal);
        if let Some(message_id) = r.recorded(&uuid).await {
            r.message_ids.push(message_id);
            continue;
        }
        match send_one(r, &item, &uuid).await {
            Ok(message_id) => {
                r.record(&uuid, &message_id).await;
                r.sent(message_id, false);
            }
            Err(why) => {
                tracing::warn!(
                    "[lark] [{}] sending {} failed: {why}",
                    r.account(),
                    item.name
                );
                failed.push(format!("{} ({why})", item.name));
            }
        }
    }
    if !failed.is_empty() {
        let text = format!("⚠️ Could not send: {}", failed.join(", "));
        let index = r.take_part();
        let summary = render::summary(&text);
        if let Err(e) = r
            .send_rendered_part(index, Target::Text, &text, &summary)
            .await
        {
            tracing::warn!("[lark] [{}] media failure note not sent: {e}", r.account());
        }
    }
}

async fn send_one(r: &mut Replier<'_>, item: &Ready, uuid: &str) -> Result<String, String> {
    let bytes = match &item.source {
        Source::Path(path) => read_capped(path, item.cap).await?,
        Source::Url(url) => download(r.out.media_http.as_ref(), url, item.cap).await?,
    };
    let client = &r.out.client;
    let msg = if item.kind == AttachmentKind::Image {
        let key = client
            .upload_image(bytes, &item.name)
            .await
            .map_err(|e| format!("upload failed: {e}"))?;
        OutgoingMessage::image(&key)
    } else {
        let kind = file_type(&item.name);
        let key = client
            .upload_file(kind, &item.name, bytes, None)
            .await
            .map_err(|e| format!("upload failed: {e}"))?;
        if kind == "opus" {
            OutgoingMessage::audio(&key)
        } else {
            OutgoingMessage::file(&key)
        }
    };
    r.deliver(uuid, &msg)
        .await
        .map_err(|e| format!("send failed: {e}"))
}

async fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read the file: {}", e.kind()))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read the file: {}", e.kind()))?;
    if bytes.len() as u64 > cap {
        return Err(format!("larger than {} MB", cap / (1024 * 1024)));
    }
    Ok(bytes)
}

/// GETs `url` without following redirects (one could leave the allowlist),
/// keeping at most `cap` bytes.
async fn download(http: Option<&reqwest::Client>, url: &str, cap: u64) -> Result<Vec<u8>, String> {
    let http = http.ok_or("no HTTP client for media downloads")?;
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("download failed: {}", without_url(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("download failed: HTTP {}", resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(format!("larger than {} MB", cap / (1024 * 1024)));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("download failed: {}", without_url(&e)))?
    {
        if (bytes.len() + chunk.len()) as u64 > cap {
            return Err(format!("larger than {} MB", cap / (1024 * 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err("the download is empty".into());
    }
    Ok(bytes)
}

/// A reqwest error without its URL (which may carry a token in the query).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(kind: AttachmentKind, source: &str, name: Option<&str>) -> OutboundMedia {
        OutboundMedia {
            kind,
            source: source.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn allowlist_matches_at_boundaries() {
        let list = vec![
            "https://cdn.example.com".to_string(),
            "http://x.test/pub/".into(),
        ];
        assert!(url_allowed("https://cdn.example.com/a.png", &list));
        assert!(url_allowed("https://CDN.example.com?x=1", &list));
        assert!(url_allowed("http://x.test/pub/a.png", &list));
        assert!(!url_allowed(
            "https://cdn.example.com.evil.org/a.png",
            &list
        ));
        assert!(!url_allowed(
            "https://cdn.example.com@evil.org/a.png",
            &list
        ));
        assert!(!url_allowed("http://x.test/public/a.png", &list));
        assert!(!url_allowed("https://cdn.example.com/a.png", &[]));
        assert!(!url_allowed("file:///etc/passwd", &["file:///".into()]));
    }

    #[test]
    fn names_and_types() {
        let m = media(AttachmentKind::File, "/tmp/dir/report.PDF", None);
        assert_eq!(display_name(&m), "report.PDF");
        assert_eq!(file_type(&display_name(&m)), "pdf");
        let u = media(AttachmentKind::Image, "https://h/x/cat.png?sig=1", None);
        assert_eq!(display_name(&u), "cat.png");
        let n = media(AttachmentKind::File, "/x", Some("../../etc/passwd"));
        assert_eq!(display_name(&n), "passwd");
        let e = media(AttachmentKind::Image, "https://h/", Some(" "));
        assert_eq!(display_name(&e), "h");
        assert_eq!(file_type("a.docx"), "doc");
        assert_eq!(file_type("a.opus"), "opus");
        assert_eq!(file_type("a.mp4"), "stream");
        assert_eq!(file_type("noext"), "stream");
    }

    #[tokio::test]
    async fn local_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("a.png");
        std::fs::write(&ok, b"png").unwrap();
        let empty = dir.path().join("e.txt");
        std::fs::write(&empty, b"").unwrap();
        let items = vec![
            media(AttachmentKind::Image, ok.to_str().unwrap(), None),
            media(AttachmentKind::File, dir.path().to_str().unwrap(), None),
            media(AttachmentKind::File, empty.to_str().unwrap(), None),
            media(AttachmentKind::File, "/no/such/file", None),
            media(AttachmentKind::Image, "https://evil.example/x.png", None),
            media(AttachmentKind::File, "ftp://x/y", None),
        ];
        let (ready, notes) = check("t", &items, &[]).await;
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].source, Source::Path(ok));
        assert_eq!(ready[0].cap, IMAGE_MAX_BYTES);
        assert_eq!(notes.len(), 5);
        assert!(notes[3].contains("allowlist"), "{notes:?}");
    }
}
