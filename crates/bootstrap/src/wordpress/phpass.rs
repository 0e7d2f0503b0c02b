//! phpass "portable" password hashes (`$P$...`), as WordPress stores them.
//!
//! WordPress up to 6.7 (Debian ships 6.1) writes and verifies these; 6.8 and
//! later still verify them (and rehash to bcrypt at the next login), so one
//! format serves both. Algorithm (class-phpass.php, `crypt_private`): salt of
//! 8 characters, `hash = md5(salt . password)`, then `2^n` times
//! `hash = md5(hash . password)`; the result is `$P$` + the cost character +
//! salt + the 16-byte hash in phpass's base64 alphabet.
//!
//! Why not the `phpass` crate (0.1.3): it does the same `$P$` algorithm, but
//! it pins rand 0.7 and base64 0.12 (one more copy of each in the build),
//! rejects `$H$` settings, compares hashes with `==`, and cannot hash with a
//! given salt, which the fixed-hash test against PHP needs. Neither it nor
//! this module writes WordPress 6.8's `$wp$2y$` bcrypt format: bootstrap
//! writes `$P$`, which every WordPress still verifies.

use md5::{Digest, Md5};

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// WordPress's cost: `new PasswordHash(8, true)`, i.e. 2^13 rounds (`B`).
const COST_LOG2: usize = 8 + 5;

/// phpass's base64 (little-endian groups, its own alphabet).
fn encode64(input: &[u8]) -> String {
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let mut value = u32::from(chunk[0]);
        if let Some(b) = chunk.get(1) {
            value |= u32::from(*b) << 8;
        }
        if let Some(b) = chunk.get(2) {
            value |= u32::from(*b) << 16;
        }
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ITOA64[((value >> (6 * i)) & 0x3f) as usize]));
        }
    }
    out
}

/// `crypt_private`: the hash of `password` for a `$P$`/`$H$` setting, or
/// `None` when the setting is not one phpass would accept.
fn crypt(password: &str, setting: &str) -> Option<String> {
    let bytes = setting.as_bytes();
    if bytes.len() < 12 || !(setting.starts_with("$P$") || setting.starts_with("$H$")) {
        return None;
    }
    let count_log2 = ITOA64.iter().position(|&c| c == bytes[3])?;
    if !(7..=30).contains(&count_log2) {
        return None;
    }
    let salt = &bytes[4..12];
    let mut hash = Md5::new()
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    for _ in 0..(1u64 << count_log2) {
        hash = Md5::new()
            .chain_update(hash)
            .chain_update(password)
            .finalize();
    }
    Some(format!("{}{}", &setting[..12], encode64(&hash)))
}

/// A fresh portable hash of `password` with a random salt.
pub fn hash(password: &str) -> Result<String, getrandom::Error> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)?;
    Ok(hash_with_salt(password, &random))
}

/// The portable hash of `password` with the salt made from `random`.
pub fn hash_with_salt(password: &str, random: &[u8; 6]) -> String {
    let setting = format!("$P${}{}", char::from(ITOA64[COST_LOG2]), encode64(random));
    // The setting is built right here, so crypt always accepts it.
    crypt(password, &setting).unwrap_or_default()
}

/// Whether `stored` is a phpass hash of `password` (constant-time compare).
pub fn verify(password: &str, stored: &str) -> bool {
    match crypt(password, stored) {
        Some(computed) if computed.len() == stored.len() => {
            computed
                .bytes()
                .zip(stored.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shape_and_round_trip() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$P$B") && h.len() == 34, "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct hors", &h));
        assert!(!verify("x", "$2y$10$notphpass"));
    }
}
