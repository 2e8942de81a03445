//! Platform errors explained in plain words, for logs, `status --probe` and
//! the account state.

use lark_client::{Error, ErrorClass};

/// What went wrong and what to do, in one sentence.
pub fn explain(e: &Error) -> String {
    let code = e.code();
    let plain = match code {
        Some(10003) | Some(10014) | Some(10015) | Some(99991663) | Some(99991661) => {
            "wrong appId or appSecret (check them in the developer console under Credentials)"
        }
        Some(99991668) | Some(230006) | Some(11205) | Some(11240) => {
            "the app's bot capability is off (enable Bot under Features, then publish a version)"
        }
        Some(99991672) | Some(99991676) => {
            "the app lacks a permission scope (add it under Permissions, then publish a version)"
        }
        Some(99991673) | Some(99991662) | Some(11207) => {
            "the app is not enabled in this tenant (ask the tenant admin to enable it)"
        }
        Some(99991401) => "this machine's IP is not in the app's IP allowlist",
        Some(99991403) => "the monthly API call quota is used up",
        Some(1000040350) => "too many long connections for this app (50 at most)",
        Some(1000040343) => {
            "the platform's long-connection service had an internal error (it is retried)"
        }
        Some(1000040344) => "appId or appSecret is empty",
        Some(230002) | Some(11201) | Some(232011) => "the bot is not a member of that chat",
        _ => "",
    };
    let raw = e.to_string();
    match (plain.is_empty(), code) {
        (true, _) => raw,
        (false, Some(c)) => format!("{plain} [code {c}: {raw}]"),
        (false, None) => format!("{plain} [{raw}]"),
    }
}

/// Whether only the operator can fix it (no point retrying quickly).
pub fn needs_operator(e: &Error) -> bool {
    matches!(e.class(), ErrorClass::Auth | ErrorClass::Config)
}
