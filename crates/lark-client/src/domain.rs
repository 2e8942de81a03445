//! Where the Open Platform lives: Feishu, Lark, or any base URL (the emulator).

/// The platform's base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    /// Feishu (China): `https://open.feishu.cn`.
    pub fn feishu() -> Domain {
        Domain(FEISHU_OPEN.into())
    }

    /// Lark (international): `https://open.larksuite.com`.
    pub fn lark() -> Domain {
        Domain(LARK_OPEN.into())
    }

    /// `feishu`, `lark`, or a base URL (`http://` allowed for tests and the emulator).
    pub fn parse(s: &str) -> Result<Domain, String> {
        match s.trim() {
            "feishu" => Ok(Domain::feishu()),
            "lark" | "larksuite" => Ok(Domain::lark()),
            url if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(Domain(url.trim_end_matches('/').to_string()))
            }
            other => Err(format!(
                "domain {other:?}: use \"feishu\", \"lark\", or a base URL such as http://127.0.0.1:9000"
            )),
        }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        &self.0
    }

    /// `base + path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The accounts host (app registration, OAuth): `accounts.feishu.cn` for
    /// Feishu, `accounts.larksuite.com` for Lark, and the same base URL for
    /// anything else (the emulator serves both on one port).
    pub fn accounts(&self) -> Domain {
        match self.0.as_str() {
            FEISHU_OPEN => Domain(FEISHU_ACCOUNTS.into()),
            LARK_OPEN => Domain(LARK_ACCOUNTS.into()),
            _ => self.clone(),
        }
    }

    /// Where to continue when the platform reports `tenant_brand = "lark"`
    /// during app registration: the Lark accounts host when this is the Feishu
    /// one (or the Feishu open host), otherwise unchanged.
    pub fn switch_to_lark(&self) -> Domain {
        match self.0.as_str() {
            FEISHU_ACCOUNTS => Domain(LARK_ACCOUNTS.into()),
            FEISHU_OPEN => Domain::lark(),
            _ => self.clone(),
        }
    }

    /// Whether this is one of the two official hosts' brands: `Some("feishu")`
    /// or `Some("lark")`; `None` for a custom base URL.
    pub fn brand(&self) -> Option<&'static str> {
        match self.0.as_str() {
            FEISHU_OPEN | FEISHU_ACCOUNTS => Some("feishu"),
            LARK_OPEN | LARK_ACCOUNTS => Some("lark"),
            _ => None,
        }
    }
}

const FEISHU_OPEN: &str = "https://open.feishu.cn";
const LARK_OPEN: &str = "https://open.larksuite.com";
const FEISHU_ACCOUNTS: &str = "https://accounts.feishu.cn";
const LARK_ACCOUNTS: &str = "https://accounts.larksuite.com";

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_urls() {
        assert_eq!(Domain::parse("feishu").unwrap(), Domain::feishu());
        assert_eq!(Domain::parse("lark").unwrap(), Domain::lark());
        assert_eq!(
            Domain::parse("http://127.0.0.1:9/").unwrap().url("/x"),
            "http://127.0.0.1:9/x"
        );
        assert!(Domain::parse("ftp://x").unwrap_err().contains("base URL"));
    }

    #[test]
    fn accounts_hosts_and_brand_switch() {
        assert_eq!(
            Domain::feishu().accounts().base(),
            "https://accounts.feishu.cn"
        );
        assert_eq!(
            Domain::lark().accounts().base(),
            "https://accounts.larksuite.com"
        );
        let local = Domain::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(local.accounts(), local);
        assert_eq!(
            Domain::feishu().accounts().switch_to_lark(),
            Domain::lark().accounts()
        );
        assert_eq!(local.switch_to_lark(), local);
        assert_eq!(Domain::lark().brand(), Some("lark"));
        assert_eq!(local.brand(), None);
    }
}
