//! Where the Open Platform lives: Feishu, Lark, or any base URL (the emulator).

/// The platform's base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    /// Feishu (China): `https://open.feishu.cn`.
    pub fn feishu() -> Domain {
        Domain("https://open.feishu.cn".into())
    }

    /// Lark (international): `https://open.larksuite.com`.
    pub fn lark() -> Domain {
        Domain("https://open.larksuite.com".into())
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
}
