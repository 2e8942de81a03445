//! Pairing codes: how an unknown DM sender asks the operator for access.
//!
//! The sender gets an 8-character code (no `0`, `O`, `1` or `I`, so it can
//! be read aloud and typed without mistakes), valid for an hour; at most three
//! codes are pending per account. The operator approves it with
//! `larkgate pairing approve CODE`; from then on the sender is allowed.

use std::time::Duration;

use rand::Rng;

/// The characters a code is made of.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Code length.
pub const CODE_LEN: usize = 8;
/// How long a code stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(3600);
/// Most pending codes per account.
pub const MAX_PENDING: usize = 3;

/// A fresh random code.
pub fn generate_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A code as typed by an operator, made comparable: upper case, without
/// spaces or dashes.
pub fn normalize_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// What the unknown sender is told.
pub fn code_message(code: &str, open_id: &str) -> String {
    format!(
        "I don't know you yet. To get access, send this pairing code to the operator of this bot:\n\n{code}\n\n\
         They approve it with `larkgate pairing approve {code}` (the code is valid for 1 hour). Your id: {open_id}"
    )
}

/// What a sender is told when too many codes are pending.
pub fn too_many_message() -> String {
    "Too many pairing requests are waiting for the operator right now. Please try again later."
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let c = generate_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
    }

    #[test]
    fn typed_codes_are_normalized() {
        assert_eq!(normalize_code(" abcd-efgh "), "ABCDEFGH");
    }
}
