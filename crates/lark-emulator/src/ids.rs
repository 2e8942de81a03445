//! Identifier generation in the platform's formats.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// `n` random lowercase hex digits.
pub fn hex(n: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| DIGITS[rng.gen_range(0..16)] as char)
        .collect()
}

/// `n` random ASCII letters and digits.
pub fn alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `n` random decimal digits, the first not zero.
pub fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|i| {
            let lo = if i == 0 { 1 } else { 0 };
            char::from(b'0' + rng.gen_range(lo..10))
        })
        .collect()
}

/// `n` hex digits derived from `seed` (FNV-1a based), stable across runs.
pub fn stable_hex(seed: &str, n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut round = 0u64;
    while out.len() < n {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
        round += 1;
    }
    out.truncate(n);
    out
}

/// A new app id: `cli_` + 16 hex.
pub fn app_id() -> String {
    format!("cli_{}", hex(16))
}

/// A message id: `om_` + 32 hex.
pub fn message_id() -> String {
    format!("om_{}", hex(32))
}

/// A chat id: `oc_` + 32 hex.
pub fn chat_id() -> String {
    format!("oc_{}", hex(32))
}

/// A user open_id: `ou_` + 32 hex.
pub fn open_id() -> String {
    format!("ou_{}", hex(32))
}

/// A thread id: `omt_` + 16 hex.
pub fn thread_id() -> String {
    format!("omt_{}", hex(16))
}

/// A tenant access token: `t-` + 40 hex.
pub fn token() -> String {
    format!("t-{}", hex(40))
}

/// A `X-Tt-Logid` value.
pub fn log_id() -> String {
    format!("2026{}", hex(28))
}

/// A card entity id: a 19-digit number.
pub fn card_id() -> String {
    digits(19)
}
