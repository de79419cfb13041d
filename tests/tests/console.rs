//! `rpcctl console` in headless Chromium, with real etcd and three example providers: the
//! services page, the service page, disable under a running consumer, the live page after a
//! SIGKILL, and the routes form (a bad rule is refused at its field; a good one reads back
//! identically through rpcctl). Screenshots land in target/console-screenshots/.
//!
//! Skips, saying why, only when chromium or chromedriver is not installed.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use example_provider::GreeterClient;
use rpc_core::cluster::ClusterConfig;
use rpc_core::Client;
use serde_json::{json, Value};
use tests::console::{ConsolePages, SHOWN};
use tests::consumer::{greeter_key, wait_listed};
use tests::process::binary;
use tests::wait::{wait_for, wait_until};
use tokio::process::Command;

/// The providers' lease TTL.
const TTL: Duration = Duration::from_secs(2);
const GREETER: &str = "example.Greeter:1.0.0";
const CALCULATOR: &str = "example.Calculator:1.0.0";
const ROUTES: &str = "/rpc/_governance/example.Calculator:1.0.0/routes";

/// One browser at a time: each test runs Chromium, etcd and four processes on a small
/// machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fixture, or `None` when no browser is installed (it said why).
async fn start() -> Option<ConsolePages> {
    ConsolePages::start(TTL).await
}

/// The data-key of every service row the page shows, and each row's provider count.
const SERVICE_ROWS: &str = "return [...document.querySelectorAll('tr.service')]
    .map(r => [r.dataset.key, r.querySelector('.providers').textContent]);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_page_lists_both_example_services_and_searches() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(setup) = start().await else {
        return;
    };
    setup.open("#/").await;
    let both = json!([[CALCULATOR, "3"], [GREETER, "3"]]);
    setup
        .wait_page(
            "both services with 3 providers",
            SERVICE_ROWS,
            json!([]),
            both,
        )
        .await;
    setup.screenshot("services.png").await;
    let search = setup.browser.wait_find("#search", SHOWN).await;
    setup.browser.type_into(&search, "calc").await;
    let calculator_only = json!([[CALCULATOR, "3"]]);
    setup
        .wait_page(
            "the search to leave the calculator",
            SERVICE_ROWS,
            json!([]),
            calculator_only,
        )
        .await;
    setup.finish().await;
}

/// The address of every provider row, sorted.
const PROVIDER_ROWS: &str = "return [...document.querySelectorAll('tr.provider')]
    .map(r => r.dataset.address).sort();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_page_lists_the_three_providers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(setup) = start().await else {
        return;
    };
    setup.open(&format!("#/service/{GREETER}")).await;
    let mut addresses = setup.addresses();
    addresses.sort();
    setup
        .wait_page(
            "3 provider rows",
            PROVIDER_ROWS,
            json!([]),
            json!(addresses),
        )
        .await;
    // The admin endpoints are scraped: every row shows traffic, not an error.
    let traffic = "return [...document.querySelectorAll('tr.provider .traffic')]
        .every(t => /calls so far|qps/.test(t.textContent));";
    setup
        .wait_page("traffic in every row", traffic, json!([]), json!(true))
        .await;
    setup.finish().await;
}

/// `whoami` answers, each with when its call started.
type Answers = Arc<Mutex<Vec<(Instant, String)>>>;

/// Workers calling `whoami` until the returned handle is dropped (aborted).
fn load(client: &Client, answers: &Answers) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let greeter = GreeterClient::new(client.clone());
            let answers = Arc::clone(answers);
            tokio::spawn(async move {
                loop {
                    let started = Instant::now();
                    if let Ok(who) = greeter.whoami().await {
                        answers.lock().unwrap().push((started, who));
                    }
                }
            })
        })
        .collect()
}

fn started_since(answers: &Answers, since: Instant, address: Option<&str>) -> usize {
    let answers = answers.lock().unwrap();
    answers
        .iter()
        .filter(|(at, who)| *at >= since && address.is_none_or(|a| a == who))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_disable_drops_a_running_consumers_share_to_zero_within_1s_and_shows_disabled() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(setup) = start().await else {
        return;
    };
    let addresses = setup.addresses();
    let registry = rpc_registry::connect(&setup.url).await.expect("connect");
    let consumer = Client::builder()
        .cluster(ClusterConfig::default())
        .discover(registry);
    wait_listed(&consumer, &greeter_key(), &addresses, SHOWN).await;
    let answers: Answers = Arc::default();
    let workers = load(&consumer, &answers);
    let began = Instant::now();
    wait_until(SHOWN, "every provider answering", || {
        let all = addresses
            .iter()
            .all(|a| started_since(&answers, began, Some(a)) > 0);
        async move { all }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    setup.open(&format!("#/service/{GREETER}")).await;
    let target = addresses[1].clone();
    let button = format!("button.disable[data-address='{target}']");
    setup.browser.wait_find(&button, SHOWN).await;
    let clicked = Instant::now();
    setup.browser.click_css(&button, SHOWN).await;
    let state = "return [...document.querySelectorAll('tr.provider')]
        .filter(r => r.dataset.address === arguments[0])
        .map(r => r.querySelector('.state').textContent);";
    setup
        .wait_page(
            "the row to show disabled",
            state,
            json!([target]),
            json!(["disabled"]),
        )
        .await;
    let settled = clicked + Duration::from_secs(1);
    wait_until(SHOWN, "600 calls started 1 s after the click", || {
        let n = started_since(&answers, settled, None);
        async move { n >= 600 }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let late = started_since(&answers, settled, Some(&target));
    assert_eq!(
        late, 0,
        "{late} calls that started 1 s after the click still reached {target}"
    );
    setup.screenshot("service.png").await;
    for worker in workers {
        worker.abort();
    }
    setup.finish().await;
}

/// How many rows of the live page show `address`.
const LIVE_ROWS: &str = "return [...document.querySelectorAll('tr.live')]
    .filter(r => arguments[0] === null || r.dataset.address === arguments[0]).length;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_with_sigkill_leaves_the_live_page_within_ttl_plus_1s_without_reload() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut setup) = start().await else {
        return;
    };
    setup.open("#/live").await;
    // Two services on each of three providers.
    setup
        .wait_page("6 live rows", LIVE_ROWS, json!([null]), json!(6))
        .await;
    setup
        .browser
        .run("window.sameDocument = true; return true;", json!([]))
        .await;
    let victim = setup.addresses()[0].clone();
    tokio::task::block_in_place(|| setup.providers[0].kill());
    let killed = Instant::now();
    let browser = &setup.browser;
    let gone = wait_until(
        TTL + Duration::from_secs(1),
        "the killed provider's rows to go",
        || {
            let args = json!([victim]);
            async move { browser.run(LIVE_ROWS, args).await == json!(0) }
        },
    )
    .await;
    let elapsed = killed.elapsed();
    gone.unwrap_or_else(|e| panic!("{e}"));
    let same = browser
        .run("return window.sameDocument === true;", json!([]))
        .await;
    assert_eq!(same, json!(true), "the page was reloaded");
    let left = browser.run(LIVE_ROWS, json!([null])).await;
    assert_eq!(left, json!(4), "the other providers stay");
    println!("the killed provider left the live page {elapsed:?} after SIGKILL");
    setup.screenshot("live.png").await;
    setup.finish().await;
}

/// Opens the calculator's page and fills a new condition rule.
async fn fill_rule(
    setup: &ConsolePages,
    name: &str,
    priority: &str,
    method: &str,
    then: (&str, &str),
) {
    setup.open(&format!("#/service/{CALCULATOR}")).await;
    let browser = &setup.browser;
    // The form takes input once it shows the stored documents.
    let add = browser
        .wait_find("#routes-form:not([inert]) #add-rule", SHOWN)
        .await;
    browser.click(&add).await;
    for (css, text) in [
        ("fieldset.rule .rule-name", name),
        ("fieldset.rule .rule-priority", priority),
        ("fieldset.rule .when-method .value", method),
        ("fieldset.rule .then-row .selector", then.0),
        ("fieldset.rule .then-row .then-matcher .value", then.1),
    ] {
        let input = browser.wait_find(css, SHOWN).await;
        browser.type_into(&input, text).await;
    }
    let save = browser.wait_find("#save-routes", SHOWN).await;
    browser.click(&save).await;
}

/// The field error in the routes form: the data-field of the element it follows, and its
/// text.
const FIELD_ERROR: &str = "const e = document.querySelector('#routes-form .field-error');
    return e ? [e.previousElementSibling && e.previousElementSibling.dataset.field, e.textContent] : null;";

async fn nothing_written(setup: &ConsolePages) {
    let stored = setup.etcd.get(ROUTES).await.expect("etcd get");
    let text = stored.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    assert_eq!(text, None, "a refused rule was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rule_shows_an_error_at_its_field_and_writes_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(setup) = start().await else {
        return;
    };
    // Refused by the server's validation: `zone` is not a selector.
    fill_rule(&setup, "bad-selector", "0", "divide", ("zone", "b")).await;
    let (error, _) = wait_for(SHOWN, "a field error", || async {
        let found = setup.browser.run(FIELD_ERROR, json!([])).await;
        (!found.is_null()).then_some(found)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        error[0],
        json!("conditions[0].then"),
        "next to the then field: {error}"
    );
    let text = error[1].as_str().unwrap_or_default();
    assert!(
        text.contains("conditions[0].then.zone") && text.contains("nothing was written"),
        "{text}"
    );
    setup.screenshot("routes-error.png").await;
    nothing_written(&setup).await;

    // Refused by the form itself: a priority that is not a number.
    fill_rule(
        &setup,
        "bad-priority",
        "high",
        "divide",
        ("metadata.zone", "b"),
    )
    .await;
    let (error, _) = wait_for(SHOWN, "a field error", || async {
        let found = setup.browser.run(FIELD_ERROR, json!([])).await;
        (!found.is_null()).then_some(found)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(error[0], json!("conditions[0].priority"), "{error}");
    nothing_written(&setup).await;
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_rule_saved_in_the_form_reads_back_identically_through_rpcctl() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(setup) = start().await else {
        return;
    };
    fill_rule(&setup, "divide-to-b", "5", "divide", ("metadata.zone", "b")).await;
    let saved = "return document.getElementById('routes-saved').textContent;";
    setup
        .wait_page(
            "the save to finish",
            saved,
            json!([]),
            json!("saved; showing what is stored"),
        )
        .await;
    let expected = json!({"version": 1, "conditions": [{
        "name": "divide-to-b", "priority": 5,
        "when": {"method": {"exact": "divide"}},
        "then": {"metadata.zone": {"exact": "b"}},
    }]});
    let shown = setup
        .browser
        .run(
            "return JSON.parse(document.getElementById('routes-json').value);",
            json!([]),
        )
        .await;
    assert_eq!(shown, expected, "the page shows what it read back");
    let output = Command::new(binary("rpcctl"))
        .args([
            "--registry",
            &setup.url,
            "--json",
            "route",
            "get",
            CALCULATOR,
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("rpcctl ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("rpcctl --json");
    assert_eq!(
        read["routes"], expected,
        "rpcctl reads back what the form saved"
    );
    let name = "return document.querySelector('fieldset.rule .rule-name').value;";
    let form = setup.browser.run(name, json!([])).await;
    assert_eq!(form, json!("divide-to-b"), "the form shows the stored rule");
    setup.screenshot("routes-saved.png").await;
    setup.finish().await;
}
