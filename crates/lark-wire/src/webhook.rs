//! Webhook-mode cryptography: AES-256-CBC event decryption (and encryption,
//! for the emulator), the `X-Lark-Signature` check and the verification
//! token check.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Why a webhook body could not be decrypted or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// `encrypt` is not valid standard base64.
    #[error("encrypt field is not valid base64")]
    Base64,
    /// The decoded bytes are too short or not whole AES blocks.
    #[error("ciphertext length {0} is not an IV plus whole 16-byte blocks")]
    Length(usize),
    /// Bad PKCS#7 padding: almost always the wrong encrypt key.
    #[error("decryption failed (bad padding): check encryptKey")]
    Padding,
    /// The plaintext is not UTF-8.
    #[error("decrypted body is not UTF-8")]
    Utf8,
    /// `X-Lark-Signature` does not match.
    #[error("request signature does not match")]
    Signature,
    /// The verification token does not match.
    #[error("verification token does not match")]
    Token,
}

fn aes_key(encrypt_key: &str) -> [u8; 32] {
    Sha256::digest(encrypt_key.as_bytes()).into()
}

/// Decrypts the `encrypt` field of a webhook body.
pub fn decrypt(encrypt_key: &str, encrypt: &str) -> Result<String, WebhookError> {
    let raw = B64
        .decode(encrypt.trim())
        .map_err(|_| WebhookError::Base64)?;
    if raw.len() < 32 || raw.len() % 16 != 0 {
        return Err(WebhookError::Length(raw.len()));
    }
    let (iv, ciphertext) = raw.split_at(16);
    let key = aes_key(encrypt_key);
    let mut buf = ciphertext.to_vec();
    let plain = Aes256CbcDec::new(&key.into(), iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| WebhookError::Padding)?;
    String::from_utf8(plain.to_vec()).map_err(|_| WebhookError::Utf8)
}

/// Encrypts `plain` as the platform does: `base64(iv || AES-256-CBC(pkcs7(plain)))`.
pub fn encrypt(encrypt_key: &str, iv: [u8; 16], plain: &[u8]) -> String {
    let key = aes_key(encrypt_key);
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 16 - plain.len() % 16, 0);
    let ciphertext = Aes256CbcEnc::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
        .expect("buffer has room for one padding block");
    let mut out = iv.to_vec();
    out.extend_from_slice(ciphertext);
    B64.encode(out)
}

/// `lower_hex(SHA-256(timestamp || nonce || encrypt_key || raw_body))`.
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, raw_body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(raw_body);
    crate::hex_lower(&h.finalize())
}

/// Checks `X-Lark-Signature` in constant time.
pub fn verify_signature(
    timestamp: &str,
    nonce: &str,
    encrypt_key: &str,
    raw_body: &[u8],
    given: &str,
) -> Result<(), WebhookError> {
    let expected = signature(timestamp, nonce, encrypt_key, raw_body);
    ct_eq(&expected, &given.to_ascii_lowercase())
        .then_some(())
        .ok_or(WebhookError::Signature)
}

/// Checks a verification token in constant time.
pub fn verify_token(expected: &str, given: &str) -> Result<(), WebhookError> {
    ct_eq(expected, given)
        .then_some(())
        .ok_or(WebhookError::Token)
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_A: &str = "tT1xP+ovuc0T3b/rnZX3ax76exqAn0ANQ6/U45GcciC0mgNBc8JtvqOJGNAPMKpgRs2dVU1NYk9VDeqS8T4SYtU0hzNU54aS84WnxvZ3VFfDcy/RyABlNqlUiGyLDzFI0yxdCMT4KR/YEQXlt6nZi50KwRlZ+A75r645KesZuLMljezYyY8VeeXEVjPw35+e";
    const VECTOR_B: &str = "4T4ivT/PR2APX9OYkhRKtu54s1rtIpj9xJU69Hs1yWQ/1RutbufsBs9xjx5YC3u/0hMRF49sN0kevQiEL8iB3bVEdpfyJXzXGDfKUjvKQTmG64GbMdTW6qRpadVPem3f32jHuT6fc+4TRg4BigwoUId+l/D+vcIwu3mDgAEbaqzWfmvccmpiRMfQbh9JhdK/akmrRjo/CXPLM+hZciFXJMSpKueV3SjZJoSls5y0ZTHC8zak/Mp/DSl1wa4mYe5laP367Lnl4ylGiXBKx3Ku29oWv79rYcO/5QT63H4rkl8bwYmAzScpb2KNnV11L3xiDzJp3hFdfXczUvm93FXu4Lw8eDAsRzIWCccKrqHh0UvtDJD95tNn6LvYew4+Xbk1RD4k7UzWJS9AMobOK778NLNxfQ+Kn7MKzBHilXnSIVY5V+dcsOOdfqJviW4yWmT73JHYKq1qJip7Cw7lbkmRMUmettUwdVFWxeXH6iTex3YXCgqoriCx/MzeQhdNEycipooB/vHItRt1CF44uFWj9tf8n3TdbdH4dNMD0hw8ejHJSbEHb9HAGCugUniN8BzL9wxE959JU4cu3BKjDuIk5oS9hLR1mSc3vKBuSa3VKOE=";

    #[test]
    fn vector_a_challenge() {
        let plain = decrypt("mazhe.nerd", VECTOR_A).unwrap();
        assert_eq!(
            plain,
            r#"{"challenge":"5634b122-c042-4634-bc7f-b07a3c3e77ad","token":"iRdCP2WwXNBXRM3mGLqhrgch3cn0gbT6","type":"url_verification"}"#
        );
    }

    #[test]
    fn vector_b_event() {
        let plain = decrypt("1212121212", VECTOR_B).unwrap();
        assert!(plain.starts_with(
            r#"{"schema":"2.0","header":{"event_id":"f7984f25108f8137722bb63cee927e66""#
        ));
        assert!(plain.contains("张三"));
        assert!(plain.ends_with(r#""challenge":"1212","type":"url_verification1"}"#));
    }

    #[test]
    fn vector_c_hello_world() {
        assert_eq!(
            decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap(),
            "hello world"
        );
    }

    #[test]
    fn wrong_key_fails_cleanly() {
        assert!(decrypt("wrong", VECTOR_A).is_err());
        assert_eq!(decrypt("k", "AAAA"), Err(WebhookError::Length(3)));
        assert_eq!(decrypt("k", "!!!"), Err(WebhookError::Base64));
    }

    #[test]
    fn encrypt_round_trips() {
        let enc = encrypt("key", [7; 16], b"{\"a\":1}");
        assert_eq!(decrypt("key", &enc).unwrap(), "{\"a\":1}");
    }

    #[test]
    fn signature_vectors() {
        let body = format!("{{\"encrypt\":\"{VECTOR_B}\"}}");
        assert_eq!(
            signature("timestamp", "nonce", "1212121212", body.as_bytes()),
            "7a51a17e7c0c52c059d226070d35f8d76e041993495ffaf5f3d05603c810e253"
        );
        let body = br#"{"encrypt":"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="}"#;
        let sig = "69c61fa99760d59824d588297c0036194769fb54331682c9cbcd93e85b9a8aad";
        assert_eq!(signature("1700000000", "abc123", "test key", body), sig);
        assert!(verify_signature("1700000000", "abc123", "test key", body, sig).is_ok());
        assert_eq!(
            verify_signature("1700000001", "abc123", "test key", body, sig),
            Err(WebhookError::Signature)
        );
    }

    #[test]
    fn token_check() {
        assert!(verify_token("abc", "abc").is_ok());
        assert!(verify_token("abc", "abd").is_err());
        assert!(verify_token("abc", "ab").is_err());
    }
}
