//! One value test of a rule: `{"exact": …}`, `{"prefix": …}`, `{"regex": …}` or
//! `{"cidr": …}`. The form is kept as written, so a document reads back exactly as stored.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The most bytes a regex may compile to; bounds what a hostile document can make a consumer
/// allocate.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// A matcher as written in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum MatcherSpec {
    Exact(String),
    Prefix(String),
    Regex(String),
    Cidr(String),
}

/// A test on one string value, compiled once when the document is read.
///
/// ```
/// use rpc_core::cluster::governance::Matcher;
///
/// let zone: Matcher = serde_json::from_str(r#"{"exact":"b"}"#).unwrap();
/// assert!(zone.matches("b") && !zone.matches("bb"));
/// let lan: Matcher = serde_json::from_str(r#"{"cidr":"127.0.0.0/8"}"#).unwrap();
/// assert!(lan.matches("127.0.0.2") && !lan.matches("10.0.0.1") && !lan.matches("localhost"));
/// assert!(serde_json::from_str::<Matcher>(r#"{"regex":"("}"#).is_err());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "MatcherSpec", into = "MatcherSpec")]
pub struct Matcher {
    spec: MatcherSpec,
    compiled: Compiled,
}

#[derive(Debug, Clone)]
enum Compiled {
    Exact,
    Prefix,
    Regex(Regex),
    Cidr(IpNet),
}

impl Matcher {
    /// Whether `value` passes. A CIDR matches IP address literals only.
    pub fn matches(&self, value: &str) -> bool {
        match (&self.compiled, &self.spec) {
            (Compiled::Exact, MatcherSpec::Exact(want)) => value == want,
            (Compiled::Prefix, MatcherSpec::Prefix(want)) => value.starts_with(want.as_str()),
            (Compiled::Regex(regex), _) => regex.is_match(value),
            (Compiled::Cidr(net), _) => value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| net.contains(&ip)),
            _ => false,
        }
    }

    /// Whether this is a CIDR matcher (valid on a host only).
    pub fn is_cidr(&self) -> bool {
        matches!(self.compiled, Compiled::Cidr(_))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Eq for Matcher {}

impl TryFrom<MatcherSpec> for Matcher {
    type Error = String;

    fn try_from(spec: MatcherSpec) -> Result<Self, Self::Error> {
        let compiled = match &spec {
            MatcherSpec::Exact(_) => Compiled::Exact,
            MatcherSpec::Prefix(_) => Compiled::Prefix,
            MatcherSpec::Regex(pattern) => regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(Compiled::Regex)
                .map_err(|e| format!("regex does not compile: {e}"))?,
            MatcherSpec::Cidr(net) => net
                .parse::<IpNet>()
                .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                .map(Compiled::Cidr)
                .map_err(|_| format!("{net:?} is not a CIDR like 10.0.0.0/8"))?,
        };
        Ok(Matcher { spec, compiled })
    }
}

impl From<Matcher> for MatcherSpec {
    fn from(matcher: Matcher) -> Self {
        matcher.spec
    }
}
