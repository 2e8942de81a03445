//! The user's turn as a model sees it: the text, notes about attachments
//! (text files inlined, other files named, voice transcripts), and images
//! read and base64-encoded for vision models.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use tokio::io::AsyncReadExt;

use super::{AgentRequest, Attachment, AttachmentKind, HistoryTurn, Role};

/// Most bytes of one text file inlined into the prompt.
pub(crate) const FILE_INLINE_LIMIT: usize = 64 * 1024;

/// Most bytes of all text files of one turn inlined into the prompt.
const TOTAL_INLINE_LIMIT: usize = 256 * 1024;

/// What is sent when the user sent nothing at all.
const EMPTY_TEXT: &str = "(empty message)";

/// One image, ready for a vision model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImagePart {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub(crate) media_type: &'static str,
    /// The file, base64-encoded.
    pub(crate) base64: String,
}

impl ImagePart {
    /// A `data:` URL of the image.
    pub(crate) fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.media_type, self.base64)
    }
}

/// The user's turn: text (never empty when there are no images) and images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserContent {
    /// The message, with notes about attachments appended.
    pub(crate) text: String,
    /// Images to show the model.
    pub(crate) images: Vec<ImagePart>,
}

/// Builds the user content of `request`. Images are attached when `vision`
/// is on and they are at most `image_limit` bytes; anything that cannot be
/// attached is mentioned by name instead, so nothing is silently lost.
pub(crate) async fn user_content(
    request: &AgentRequest,
    vision: bool,
    image_limit: u64,
) -> UserContent {
    let mut notes = Vec::new();
    let mut images = Vec::new();
    let mut inline_budget = TOTAL_INLINE_LIMIT;
    for attachment in &request.attachments {
        match attachment.kind {
            AttachmentKind::Image if vision => {
                match read_image(&attachment.path, image_limit).await {
                    Ok(image) => images.push(image),
                    Err(why) => notes.push(format!("[image {}: {why}]", attachment.name)),
                }
            }
            AttachmentKind::Image => {
                notes.push(format!("[the user sent an image: {}]", attachment.name))
            }
            AttachmentKind::File => notes.push(file_note(attachment, &mut inline_budget).await),
            AttachmentKind::Audio => notes.push(audio_note(attachment)),
            AttachmentKind::Video => {
                notes.push(format!("[the user sent a video: {}]", attachment.name))
            }
        }
    }
    let mut text = request.text.clone();
    for note in notes {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&note);
    }
    if text.trim().is_empty() && images.is_empty() {
        text = EMPTY_TEXT.to_string();
    }
    UserContent { text, images }
}

/// History as alternating turns a model accepts: empty turns dropped, and
/// when `user_first` is set, assistant turns before the first user turn too.
pub(crate) fn usable_history(history: &[HistoryTurn], user_first: bool) -> Vec<&HistoryTurn> {
    let mut seen_user = !user_first;
    history
        .iter()
        .filter(|turn| !turn.text.trim().is_empty())
        .filter(|turn| {
            seen_user |= turn.role == Role::User;
            seen_user
        })
        .collect()
}

fn audio_note(attachment: &Attachment) -> String {
    match attachment.transcript.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => format!(
            "[the user sent a voice message: {}]\nTranscript: {t}",
            attachment.name
        ),
        _ => format!("[the user sent a voice message: {}]", attachment.name),
    }
}

/// A text file inlined in a fenced block, or a note naming any other file.
async fn file_note(attachment: &Attachment, budget: &mut usize) -> String {
    let limit = FILE_INLINE_LIMIT.min(*budget);
    let mentioned = || {
        let mime = attachment.mime.as_deref().unwrap_or("unknown type");
        format!("[the user sent a file: {} ({mime})]", attachment.name)
    };
    if limit == 0 {
        return mentioned();
    }
    let (bytes, complete) = match read_prefix(&attachment.path, limit).await {
        Ok(read) => read,
        Err(_) => return format!("[file {}: could not be read]", attachment.name),
    };
    let Some(text) = as_text(&bytes, complete, attachment.mime.as_deref()) else {
        return mentioned();
    };
    *budget -= bytes.len();
    let fence = fence_for(&text);
    let mut note = format!("[file {}]\n{fence}\n{text}", attachment.name);
    if !text.ends_with('\n') {
        note.push('\n');
    }
    note.push_str(&fence);
    if !complete {
        let _ = write!(
            note,
            "\n[file {} cut after {} bytes]",
            attachment.name,
            bytes.len()
        );
    }
    note
}

/// The file's text, if it is text: declared as such, or valid UTF-8
/// without NUL bytes (a character cut by the limit is allowed).
fn as_text(bytes: &[u8], complete: bool, mime: Option<&str>) -> Option<String> {
    let declared = mime.is_some_and(|m| {
        m.starts_with("text/")
            || [
                "json",
                "xml",
                "yaml",
                "toml",
                "javascript",
                "csv",
                "markdown",
            ]
            .iter()
            .any(|t| m.contains(t))
    });
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => !complete && e.error_len().is_none(),
    };
    let binary_mime = mime.is_some_and(|m| {
        [
            "image/",
            "audio/",
            "video/",
            "application/pdf",
            "application/zip",
        ]
        .iter()
        .any(|p| m.starts_with(p))
    });
    let looks_text = valid && !bytes.contains(&0) && !binary_mime;
    (declared || looks_text).then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// Reads at most `limit` bytes; tells whether that was the whole file.
async fn read_prefix(path: &Path, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).await?;
    let complete = bytes.len() <= limit;
    bytes.truncate(limit);
    Ok((bytes, complete))
}

/// Reads an image a vision model accepts, or says why not.
async fn read_image(path: &Path, limit: u64) -> Result<ImagePart, String> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|_| "could not be read".to_string())?
        .len();
    if size > limit {
        return Err(format!("too large to show the model ({size} bytes)"));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|_| "could not be read".to_string())?;
    let media_type =
        image_type(&bytes).ok_or_else(|| "not a PNG, JPEG, GIF or WebP image".to_string())?;
    Ok(ImagePart {
        media_type,
        base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
    })
}

/// The image type from the file's first bytes.
pub(crate) fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(kind: AttachmentKind, path: &Path, name: &str, mime: Option<&str>) -> Attachment {
        Attachment {
            kind,
            path: path.to_path_buf(),
            name: name.into(),
            mime: mime.map(str::to_string),
            transcript: None,
        }
    }

    #[tokio::test]
    async fn text_files_are_inlined_and_binaries_named() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes.md");
        std::fs::write(&notes, "has ``` inside\n").unwrap();
        let blob = dir.path().join("x.bin");
        std::fs::write(&blob, [0u8, 1, 2, 255]).unwrap();
        let request = AgentRequest {
            text: "look".into(),
            attachments: vec![
                attachment(AttachmentKind::File, &notes, "notes.md", None),
                attachment(
                    AttachmentKind::File,
                    &blob,
                    "x.bin",
                    Some("application/x-thing"),
                ),
            ],
            ..AgentRequest::default()
        };
        let content = user_content(&request, true, 1 << 20).await;
        assert_eq!(
            content.text,
            "look\n\n[file notes.md]\n````\nhas ``` inside\n````\n\n\
             [the user sent a file: x.bin (application/x-thing)]"
        );
    }

    #[tokio::test]
    async fn big_text_files_are_cut_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.txt");
        std::fs::write(&big, "a".repeat(FILE_INLINE_LIMIT + 10)).unwrap();
        let request = AgentRequest {
            attachments: vec![attachment(
                AttachmentKind::File,
                &big,
                "big.txt",
                Some("text/plain"),
            )],
            ..AgentRequest::default()
        };
        let content = user_content(&request, true, 1 << 20).await;
        assert!(content.text.ends_with(&format!(
            "[file big.txt cut after {FILE_INLINE_LIMIT} bytes]"
        )));
        assert!(content.text.len() < FILE_INLINE_LIMIT + 100);
    }

    #[tokio::test]
    async fn images_are_encoded_or_mentioned() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\nrest").unwrap();
        let fake = dir.path().join("b.png");
        std::fs::write(&fake, b"not an image").unwrap();
        let request = AgentRequest {
            attachments: vec![
                attachment(AttachmentKind::Image, &png, "a.png", None),
                attachment(AttachmentKind::Image, &fake, "b.png", None),
                attachment(
                    AttachmentKind::Image,
                    &dir.path().join("gone.png"),
                    "gone.png",
                    None,
                ),
            ],
            ..AgentRequest::default()
        };
        let content = user_content(&request, true, 1 << 20).await;
        assert_eq!(content.images.len(), 1);
        assert_eq!(content.images[0].media_type, "image/png");
        assert!(content.images[0]
            .data_url()
            .starts_with("data:image/png;base64,iVBORw0KGg"));
        assert_eq!(
            content.text,
            "[image b.png: not a PNG, JPEG, GIF or WebP image]\n\n[image gone.png: could not be read]"
        );
        let no_vision = user_content(&request, false, 1 << 20).await;
        assert!(no_vision.images.is_empty());
        assert!(no_vision
            .text
            .starts_with("[the user sent an image: a.png]"));
        let too_small = user_content(&request, true, 4).await;
        assert!(too_small.text.starts_with("[image a.png: too large"));
    }

    #[tokio::test]
    async fn voice_transcripts_and_empty_messages() {
        let mut voice = attachment(
            AttachmentKind::Audio,
            Path::new("/nonexistent"),
            "v.opus",
            None,
        );
        voice.transcript = Some("hello there".into());
        let request = AgentRequest {
            attachments: vec![voice],
            ..AgentRequest::default()
        };
        let content = user_content(&request, true, 1).await;
        assert_eq!(
            content.text,
            "[the user sent a voice message: v.opus]\nTranscript: hello there"
        );
        let empty = user_content(&AgentRequest::default(), true, 1).await;
        assert_eq!(empty.text, EMPTY_TEXT);
    }

    #[test]
    fn history_drops_empty_and_leading_assistant_turns() {
        let turn = |role, text: &str| HistoryTurn {
            role,
            text: text.into(),
        };
        let history = [
            turn(Role::Assistant, "welcome"),
            turn(Role::User, "hi"),
            turn(Role::Assistant, " "),
            turn(Role::Assistant, "hello"),
        ];
        let texts = |v: Vec<&HistoryTurn>| v.iter().map(|t| t.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(usable_history(&history, true)), ["hi", "hello"]);
        assert_eq!(
            texts(usable_history(&history, false)),
            ["welcome", "hi", "hello"]
        );
    }
}
