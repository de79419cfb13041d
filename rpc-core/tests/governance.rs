//! Governance documents (parse → validate → route), as a consumer and `rpcctl route explain`
//! apply them: disabled addresses, tag routing, condition rules, fall-back and force.

use rpc_core::cluster::governance::router::{self, StepOutcome};
use rpc_core::cluster::governance::{CallFacts, GovernanceError, Overrides, Routes};
use rpc_core::protocol::Metadata;
use rpc_core::{ServiceInstance, ServiceKey};

fn provider(port: u16, tag: Option<&str>, zone: &str) -> ServiceInstance {
    let key = ServiceKey::new("example.Calculator", "1.0.0");
    let mut instance = ServiceInstance::new(&key, "127.0.0.1", port);
    if let Some(tag) = tag {
        instance.metadata.insert("rpc.tag".into(), tag.into());
    }
    instance.metadata.insert("zone".into(), zone.into());
    instance
}

fn call<'a>(method: &'a str, tag: Option<&'a str>) -> CallFacts<'a> {
    CallFacts {
        method,
        tag,
        caller: None,
        metadata: None,
    }
}

fn ports(providers: &[&ServiceInstance], selected: &[usize]) -> Vec<u16> {
    selected.iter().map(|&i| providers[i].port).collect()
}

#[test]
fn a_disabled_address_gets_no_calls_and_is_named() {
    let (a, b, c) = (
        provider(1, None, "a"),
        provider(2, None, "a"),
        provider(3, None, "b"),
    );
    let providers = [&a, &b, &c];
    let overrides =
        Overrides::parse(r#"{"version":1,"addresses":{"127.0.0.1:2":{"disabled":true}}}"#).unwrap();
    let routed = router::route(Some(&overrides), None, &providers, &call("add", None));
    assert_eq!(ports(&providers, &routed.selected), vec![1, 3]);
    assert_eq!(routed.decision.disabled, vec!["127.0.0.1:2".to_string()]);
}

#[test]
fn gray_release_tags_route_and_fall_back_unless_forced() {
    let (g1, g2) = (
        provider(1, Some("gray"), "a"),
        provider(2, Some("gray"), "a"),
    );
    let (u1, u2) = (provider(3, None, "a"), provider(4, None, "a"));
    let all = [&g1, &g2, &u1, &u2];
    let routes = Routes::default();
    let tagged = router::route(None, Some(&routes), &all, &call("add", Some("gray")));
    assert_eq!(ports(&all, &tagged.selected), vec![1, 2]);
    let untagged = router::route(None, Some(&routes), &all, &call("add", None));
    assert_eq!(ports(&all, &untagged.selected), vec![3, 4]);

    // The gray providers are gone: without force the call falls back to untagged ones.
    let rest = [&u1, &u2];
    let fell_back = router::route(None, Some(&routes), &rest, &call("add", Some("gray")));
    assert_eq!(ports(&rest, &fell_back.selected), vec![3, 4]);
    assert_eq!(fell_back.decision.tag.1, StepOutcome::FellBack);
    assert!(fell_back.decision.fell_back());

    let forced = Routes::parse(r#"{"version":1,"tag":{"force":true}}"#).unwrap();
    let none = router::route(None, Some(&forced), &rest, &call("add", Some("gray")));
    assert!(none.selected.is_empty());
    assert_eq!(none.decision.tag.1, StepOutcome::ForcedEmpty);
}

#[test]
fn a_condition_rule_sends_one_method_to_one_zone() {
    let (a, b1, b2) = (
        provider(1, None, "a"),
        provider(2, None, "b"),
        provider(3, None, "b"),
    );
    let providers = [&a, &b1, &b2];
    let routes = Routes::parse(
        r#"{"version":1,"conditions":[{"name":"divide-to-b","when":{"method":{"exact":"divide"}},"then":{"metadata.zone":{"exact":"b"}}}]}"#,
    )
    .unwrap();
    let divide = router::route(None, Some(&routes), &providers, &call("divide", None));
    assert_eq!(ports(&providers, &divide.selected), vec![2, 3]);
    assert_eq!(
        divide.decision.condition,
        Some(("divide-to-b".to_string(), StepOutcome::Applied))
    );
    let add = router::route(None, Some(&routes), &providers, &call("add", None));
    assert_eq!(ports(&providers, &add.selected), vec![1, 2, 3]);
    assert_eq!(add.decision.condition, None);
    assert!(divide.decision.to_string().contains("divide-to-b"));
}

#[test]
fn the_matching_rule_of_highest_priority_decides_and_force_empties() {
    let (a, b) = (provider(1, None, "a"), provider(2, None, "b"));
    let providers = [&a, &b];
    let routes = Routes::parse(
        r#"{"version":1,"conditions":[
            {"name":"low","priority":1,"when":{},"then":{"metadata.zone":{"exact":"a"}}},
            {"name":"high","priority":9,"when":{"caller":{"prefix":"billing"}},"then":{"host":{"cidr":"127.0.0.0/8"},"port":{"exact":"2"}}},
            {"name":"nowhere","priority":5,"force":true,"when":{"metadata":{"x-user":{"regex":"^vip-[0-9]+$"}}},"then":{"metadata.zone":{"exact":"z"}}}
        ]}"#,
    )
    .unwrap();
    let billing = CallFacts {
        caller: Some("billing-api"),
        ..call("add", None)
    };
    let routed = router::route(None, Some(&routes), &providers, &billing);
    assert_eq!(ports(&providers, &routed.selected), vec![2]);
    let mut metadata = Metadata::new();
    metadata.insert("x-user", "vip-7").unwrap();
    let vip = CallFacts {
        metadata: Some(&metadata),
        ..call("add", None)
    };
    let routed = router::route(None, Some(&routes), &providers, &vip);
    assert!(routed.selected.is_empty());
    assert_eq!(
        routed.decision.condition,
        Some(("nowhere".to_string(), StepOutcome::ForcedEmpty))
    );
    let other = router::route(None, Some(&routes), &providers, &call("add", None));
    assert_eq!(ports(&providers, &other.selected), vec![1]);
}

#[test]
fn a_rule_that_matches_no_provider_falls_back_without_force() {
    let (a, b) = (provider(1, None, "a"), provider(2, None, "b"));
    let providers = [&a, &b];
    let routes = Routes::parse(
        r#"{"version":1,"conditions":[{"name":"to-c","then":{"metadata.zone":{"exact":"c"}}}]}"#,
    )
    .unwrap();
    let routed = router::route(None, Some(&routes), &providers, &call("add", None));
    assert_eq!(ports(&providers, &routed.selected), vec![1, 2]);
    assert!(routed.decision.fell_back());
}

fn invalid_field(error: GovernanceError) -> String {
    match error {
        GovernanceError::Invalid { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn bad_documents_are_refused_naming_the_field() {
    let cases = [
        (r#"{"version":2}"#, "version"),
        (
            r#"{"version":1,"conditions":[{"name":"x","then":{"zone":{"exact":"b"}}}]}"#,
            "conditions[0].then.zone",
        ),
        (
            r#"{"version":1,"conditions":[{"name":"x","then":{"host":{"regex":"("}}}]}"#,
            "conditions[0].then.host",
        ),
        (
            r#"{"version":1,"conditions":[{"name":"x","then":{"port":{"cidr":"10.0.0.0/8"}}}]}"#,
            "conditions[0].then.port",
        ),
        (
            r#"{"version":1,"conditions":[{"name":"x","then":{}}]}"#,
            "conditions[0].then",
        ),
        (
            r#"{"version":1,"conditions":[{"name":"x","then":{"host":{"exakt":"b"}}}]}"#,
            "conditions[0].then.host",
        ),
        (r#"{"version":1,"tag":{"forse":true}}"#, "tag.forse"),
    ];
    for (text, field) in cases {
        let error = Routes::parse(text).expect_err(text);
        assert_eq!(invalid_field(error), field, "{text}");
    }
    let overrides = [
        (
            r#"{"version":1,"service":{"balancer":"fastest"}}"#,
            "service.balancer",
        ),
        (
            r#"{"version":1,"service":{"max_attempts":0}}"#,
            "service.max_attempts",
        ),
        (
            r#"{"version":1,"addresses":{"nowhere":{"disabled":true}}}"#,
            "addresses.nowhere",
        ),
        (
            r#"{"version":1,"addresses":{"127.0.0.1:1":{"weight":0}}}"#,
            "addresses.127.0.0.1:1.weight",
        ),
    ];
    for (text, field) in overrides {
        let error = Overrides::parse(text).expect_err(text);
        assert_eq!(invalid_field(error), field, "{text}");
    }
    assert!(matches!(
        Routes::parse("{not json"),
        Err(GovernanceError::Parse(_))
    ));
}

#[test]
fn documents_read_back_exactly_as_written() {
    let routes = r#"{"version":1,"tag":{"force":true},"conditions":[{"name":"r","priority":3,"force":true,"when":{"method":{"prefix":"div"},"tag":{"exact":"gray"},"caller":{"regex":"^a"},"metadata":{"k":{"exact":"v"}}},"then":{"host":{"cidr":"127.0.0.0/8"},"metadata.zone":{"exact":"b"}}}]}"#;
    assert_eq!(Routes::parse(routes).unwrap().to_json(), routes);
    let overrides = r#"{"version":1,"service":{"deadline_ms":500,"max_attempts":2,"balancer":"least-loaded","policy":"failover"},"addresses":{"127.0.0.1:9101":{"disabled":true,"weight":300}}}"#;
    assert_eq!(Overrides::parse(overrides).unwrap().to_json(), overrides);
}
