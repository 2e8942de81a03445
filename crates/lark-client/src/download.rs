//! Downloading a resource (image, file, audio, video) of a received message,
//! streamed with a size cap.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::{seg, Call};
use crate::{Client, Error};

/// Which resource endpoint `type` to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// Images, including images inside posts.
    Image,
    /// Files, audio and video.
    File,
}

impl ResourceKind {
    fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Image => "image",
            ResourceKind::File => "file",
        }
    }
}

/// What a download produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub bytes: u64,
    /// `Content-Type`, when sent.
    pub content_type: Option<String>,
    /// The file name from `Content-Disposition`, when sent.
    pub file_name: Option<String>,
}

const RESOURCE: &str = "GET /im/v1/messages/:message_id/resources/:file_key";

impl Client {
    /// Downloads a message resource into the file `dest`. When the resource
    /// is larger than `max_bytes` (or anything fails) the file is removed and
    /// [`Error::TooLarge`] (or the failure) is returned.
    pub async fn download_resource(
        &self,
        message_id: &str,
        file_key: &str,
        kind: ResourceKind,
        max_bytes: u64,
        dest: &Path,
    ) -> Result<Downloaded, Error> {
        let mut file = tokio::fs::File::create(dest).await?;
        let result = self
            .download_resource_to(message_id, file_key, kind, max_bytes, &mut file)
            .await;
        let flushed = match result {
            Ok(d) => file.sync_all().await.map(|()| d).map_err(Error::from),
            Err(e) => Err(e),
        };
        if flushed.is_err() {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
        }
        flushed
    }

    /// Streams a message resource into `out`. On [`Error::TooLarge`] the
    /// bytes already written stay in `out` (the caller discards them).
    pub async fn download_resource_to<W: AsyncWrite + Unpin + Send>(
        &self,
        message_id: &str,
        file_key: &str,
        kind: ResourceKind,
        max_bytes: u64,
        out: &mut W,
    ) -> Result<Downloaded, Error> {
        let call = Call::new(
            Method::GET,
            RESOURCE,
            format!(
                "/im/v1/messages/{}/resources/{}",
                seg(message_id),
                seg(file_key)
            ),
        )
        .query("type", kind.as_str());
        let resp = self.call_raw(&call).await?;
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(Error::TooLarge { limit: max_bytes });
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let file_name = header("content-disposition").and_then(|d| disposition_file_name(&d));
        let mut written = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(Error::TooLarge { limit: max_bytes });
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(Downloaded {
            bytes: written,
            content_type,
            file_name,
        })
    }
}

/// The file name of a `Content-Disposition` header: `filename*=UTF-8''…`
/// (percent-encoded) wins over `filename="…"`. Path separators are removed.
pub fn disposition_file_name(header: &str) -> Option<String> {
    let params: Vec<(String, &str)> = header
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let extended = params
        .iter()
        .find(|(k, _)| k == "filename*")
        .and_then(|(_, v)| {
            let (_charset, rest) = v.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            Some(percent_decode(encoded))
        });
    let plain = || {
        params
            .iter()
            .find(|(k, _)| k == "filename")
            .map(|(_, v)| v.trim_matches('"').replace("\\\"", "\""))
    };
    extended
        .or_else(plain)
        .map(|name| name.replace(['/', '\\'], "_"))
        .filter(|name| !name.is_empty())
}

/// Percent-decodes `%XX` sequences (invalid ones are kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_disposition() {
        assert_eq!(
            disposition_file_name(r#"attachment; filename="report.pdf""#).as_deref(),
            Some("report.pdf")
        );
        assert_eq!(
            disposition_file_name(
                "attachment; filename=\"a.txt\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt"
            )
            .as_deref(),
            Some("报告.txt")
        );
        assert_eq!(
            disposition_file_name(r#"attachment; filename="../../etc/passwd""#).as_deref(),
            Some(".._.._etc_passwd")
        );
        assert_eq!(disposition_file_name("inline"), None);
    }
}
