//! The routes document: tag routing and condition rules.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{check_version, GovernanceError, Matcher, FORMAT_VERSION};

/// The most condition rules one document may hold.
pub const MAX_CONDITIONS: usize = 256;

/// `<root>/_governance/<service-key>/routes`.
///
/// ```
/// use rpc_core::cluster::governance::Routes;
///
/// let text = r#"{"version":1,"conditions":[{"name":"divide-to-b","when":{"method":{"exact":"divide"}},"then":{"metadata.zone":{"exact":"b"}}}]}"#;
/// let routes = Routes::parse(text).unwrap();
/// assert_eq!(routes.to_json(), text);
/// let bad = text.replace("metadata.zone", "zone");
/// let error = Routes::parse(&bad).unwrap_err().to_string();
/// assert!(error.contains("conditions[0].then.zone"), "{error}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Routes {
    /// The format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// How tagged calls are routed.
    #[serde(default, skip_serializing_if = "TagRule::is_default")]
    pub tag: TagRule,
    /// Condition rules; the matching one with the highest priority decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionRule>,
}

/// Tag routing: a call tagged `T` goes to providers tagged `T` (metadata `rpc.tag`); an
/// untagged call goes to untagged providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TagRule {
    /// A tagged call with no provider of its tag fails with `NoProvider` instead of falling
    /// back to untagged providers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// `when` the call matches, send it only to providers that match `then`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConditionRule {
    /// A name for `route explain` and logs.
    pub name: String,
    /// Higher first; rules of equal priority keep document order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// No matching provider means `NoProvider`, not a fall-back to the unfiltered list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Which calls the rule applies to; empty means every call.
    #[serde(default, skip_serializing_if = "Condition::is_empty")]
    pub when: Condition,
    /// Which providers those calls may reach, by selector: `host`, `port`, `address`, `tag`
    /// or `metadata.<key>`. All must match.
    pub then: BTreeMap<String, Matcher>,
}

/// The facts about a call a rule tests. All that are given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Condition {
    /// The method name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Matcher>,
    /// The call's routing tag (`rpc-tag`); an untagged call never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Matcher>,
    /// The caller's name (`rpc-caller`); a call without one never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Matcher>,
    /// Request metadata entries by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Matcher>,
}

impl Routes {
    /// Parses and validates a document.
    pub fn parse(text: &str) -> Result<Routes, GovernanceError> {
        let routes: Routes = parse_json(text)?;
        routes.validate()?;
        Ok(routes)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), GovernanceError> {
        check_version(self.version)?;
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(GovernanceError::invalid(
                "conditions",
                format!(
                    "{} rules; at most {MAX_CONDITIONS} are allowed",
                    self.conditions.len()
                ),
            ));
        }
        for (i, rule) in self.conditions.iter().enumerate() {
            rule.validate()
                .map_err(|e| e.within(&format!("conditions[{i}]")))?;
        }
        Ok(())
    }

    /// The document as compact JSON, fields in a fixed order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The condition rules, highest priority first (stable: equal priorities keep their
    /// order in the document).
    pub fn by_priority(&self) -> Vec<&ConditionRule> {
        let mut rules: Vec<&ConditionRule> = self.conditions.iter().collect();
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
        rules
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            version: FORMAT_VERSION,
            tag: TagRule::default(),
            conditions: Vec::new(),
        }
    }
}

fn is_zero(priority: &i32) -> bool {
    *priority == 0
}

impl Condition {
    /// Whether the condition tests nothing (every call matches).
    pub fn is_empty(&self) -> bool {
        self == &Condition::default()
    }
}

impl TagRule {
    fn is_default(&self) -> bool {
        self == &TagRule::default()
    }
}

impl ConditionRule {
    fn validate(&self) -> Result<(), GovernanceError> {
        if self.name.trim().is_empty() {
            return Err(GovernanceError::invalid("name", "must not be empty"));
        }
        if self.then.is_empty() {
            return Err(GovernanceError::invalid(
                "then",
                "names no selector; give at least one of host, port, address, tag, metadata.<key>",
            ));
        }
        for (selector, matcher) in &self.then {
            let field = format!("then.{selector}");
            let known = matches!(selector.as_str(), "host" | "port" | "address" | "tag")
                || selector
                    .strip_prefix("metadata.")
                    .is_some_and(|key| !key.is_empty());
            if !known {
                return Err(GovernanceError::invalid(
                    field,
                    "unknown selector; expected host, port, address, tag or metadata.<key>",
                ));
            }
            if matcher.is_cidr() && selector != "host" {
                return Err(GovernanceError::invalid(field, "cidr matches a host only"));
            }
        }
        let when = &self.when;
        let cidr_in_when = [&when.method, &when.tag, &when.caller]
            .into_iter()
            .flatten()
            .chain(when.metadata.values())
            .any(Matcher::is_cidr);
        if cidr_in_when {
            return Err(GovernanceError::invalid(
                "when",
                "cidr matches a provider host only",
            ));
        }
        Ok(())
    }
}

/// Parses JSON, naming the field where it went wrong (`conditions[0].then.host`).
pub(super) fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, GovernanceError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let error = e.into_inner();
        if error.is_data() && field != "." {
            GovernanceError::invalid(field, error.to_string())
        } else {
            GovernanceError::from(error)
        }
    })?;
    deserializer.end()?;
    Ok(value)
}
