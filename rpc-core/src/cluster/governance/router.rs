//! Applying governance to one call: which of a service's providers it may reach, and why.
//! The consumer's invoker and `rpcctl route explain` run this same code.

use std::fmt;

use super::{ConditionRule, Overrides, Routes, TAG_METADATA_KEY};
use crate::protocol::Metadata;
use crate::registry::ServiceInstance;

/// What a rule can know about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// The method name.
    pub method: &'a str,
    /// The routing tag (`rpc-tag`), if the call has one.
    pub tag: Option<&'a str>,
    /// The caller's name (`rpc-caller`), if known.
    pub caller: Option<&'a str>,
    /// The request metadata, if any.
    pub metadata: Option<&'a Metadata>,
}

/// The providers a call may reach (indices into the list given) and how that was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Indices of the providers left, in the order given.
    pub selected: Vec<usize>,
    /// Why.
    pub decision: Decision,
}

/// Every step's part in a routing result, for `route explain` and warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Addresses the overrides disabled.
    pub disabled: Vec<String>,
    /// The condition rule that matched the call, and what it did.
    pub condition: Option<(String, StepOutcome)>,
    /// What tag routing did, and for which tag (`None`: an untagged call).
    pub tag: (Option<String>, StepOutcome),
}

/// What one routing step did to the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StepOutcome {
    /// It narrowed the list to the providers that match.
    #[default]
    Applied,
    /// Nothing matched and the rule does not force, so the list stayed as it was.
    FellBack,
    /// Nothing matched and the rule forces: no provider.
    ForcedEmpty,
}

impl Decision {
    /// Whether a step found no match and fell back to the unfiltered list (worth a warning).
    pub fn fell_back(&self) -> bool {
        self.tag.1 == StepOutcome::FellBack
            || matches!(self.condition, Some((_, StepOutcome::FellBack)))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disabled.is_empty() {
            write!(f, "overrides: none disabled")?;
        } else {
            write!(f, "overrides: disabled {}", self.disabled.join(", "))?;
        }
        match &self.condition {
            None => write!(f, "; condition: no rule matched")?,
            Some((name, outcome)) => {
                write!(f, "; condition: rule {name:?} {}", describe(*outcome))?
            }
        }
        match &self.tag {
            (Some(tag), outcome) => write!(f, "; tag {tag:?}: {}", describe(*outcome)),
            (None, outcome) => write!(f, "; untagged call: {}", describe(*outcome)),
        }
    }
}

fn describe(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Applied => "selected the matching providers",
        StepOutcome::FellBack => "matched no provider, fell back to the unfiltered list",
        StepOutcome::ForcedEmpty => "matched no provider and forces: no provider",
    }
}

/// Routes one call over `providers`: drop disabled addresses, apply the matching condition
/// rule of highest priority, then tag routing.
///
/// ```
/// use rpc_core::cluster::governance::{router, CallFacts, Routes};
/// use rpc_core::{ServiceInstance, ServiceKey};
///
/// let key = ServiceKey::new("example.Calculator", "1.0.0");
/// let mut gray = ServiceInstance::new(&key, "127.0.0.1", 9101);
/// gray.metadata.insert("rpc.tag".into(), "gray".into());
/// let plain = ServiceInstance::new(&key, "127.0.0.1", 9102);
/// let providers = [&gray, &plain];
/// let call = CallFacts { method: "add", tag: Some("gray"), caller: None, metadata: None };
/// let routed = router::route(None, Some(&Routes::default()), &providers, &call);
/// assert_eq!(routed.selected, vec![0]);
/// let untagged = CallFacts { tag: None, ..call };
/// assert_eq!(router::route(None, None, &providers, &untagged).selected, vec![1]);
/// ```
pub fn route(
    overrides: Option<&Overrides>,
    routes: Option<&Routes>,
    providers: &[&ServiceInstance],
    call: &CallFacts<'_>,
) -> Routed {
    let mut decision = Decision::default();
    let mut selected: Vec<usize> = (0..providers.len()).collect();
    if let Some(overrides) = overrides {
        selected.retain(|&i| {
            let address = providers[i].address();
            let disabled = overrides.is_disabled(&address);
            if disabled {
                decision.disabled.push(address);
            }
            !disabled
        });
    }
    let rule = routes.and_then(|routes| {
        routes
            .by_priority()
            .into_iter()
            .find(|rule| call_matches(rule, call))
    });
    if let Some(rule) = rule {
        let outcome = narrow(&mut selected, rule.force, |i| {
            provider_matches(rule, providers[i])
        });
        decision.condition = Some((rule.name.clone(), outcome));
    }
    let force_tag = routes.is_some_and(|routes| routes.tag.force);
    let tag_outcome = match call.tag.filter(|tag| !tag.is_empty()) {
        Some(tag) => {
            let outcome = narrow(&mut selected, force_tag, |i| {
                provider_tag(providers[i]) == Some(tag)
            });
            if outcome == StepOutcome::FellBack {
                // A tag with no providers falls back to the untagged ones, like an untagged
                // call; only if there are none of those either does the whole list serve.
                narrow(&mut selected, false, |i| {
                    provider_tag(providers[i]).is_none()
                });
            }
            (Some(tag.to_string()), outcome)
        }
        None => (
            None,
            narrow(&mut selected, false, |i| {
                provider_tag(providers[i]).is_none()
            }),
        ),
    };
    decision.tag = tag_outcome;
    Routed { selected, decision }
}

/// Keeps the entries that pass; if none does, keeps all (or none, if `force`).
fn narrow(selected: &mut Vec<usize>, force: bool, keep: impl Fn(usize) -> bool) -> StepOutcome {
    let narrowed: Vec<usize> = selected.iter().copied().filter(|&i| keep(i)).collect();
    if !narrowed.is_empty() {
        *selected = narrowed;
        StepOutcome::Applied
    } else if force {
        selected.clear();
        StepOutcome::ForcedEmpty
    } else {
        StepOutcome::FellBack
    }
}

/// A provider's routing tag: its `rpc.tag` metadata, if set and not empty.
pub fn provider_tag(instance: &ServiceInstance) -> Option<&str> {
    instance
        .metadata
        .get(TAG_METADATA_KEY)
        .map(String::as_str)
        .filter(|tag| !tag.is_empty())
}

fn call_matches(rule: &ConditionRule, call: &CallFacts<'_>) -> bool {
    let when = &rule.when;
    let test = |matcher: &Option<super::Matcher>, value: Option<&str>| match matcher {
        None => true,
        Some(matcher) => value.is_some_and(|v| matcher.matches(v)),
    };
    test(&when.method, Some(call.method))
        && test(&when.tag, call.tag)
        && test(&when.caller, call.caller)
        && when.metadata.iter().all(|(key, matcher)| {
            call.metadata
                .and_then(|metadata| metadata.get_str(key))
                .is_some_and(|value| matcher.matches(value))
        })
}

fn provider_matches(rule: &ConditionRule, instance: &ServiceInstance) -> bool {
    rule.then.iter().all(|(selector, matcher)| {
        let value = match selector.as_str() {
            "host" => Some(instance.host.clone()),
            "port" => Some(instance.port.to_string()),
            "address" => Some(instance.address()),
            "tag" => provider_tag(instance).map(str::to_string),
            other => other
                .strip_prefix("metadata.")
                .and_then(|key| instance.metadata.get(key).cloned()),
        };
        value.is_some_and(|value| matcher.matches(&value))
    })
}
