//! A service served and called through a registry and a balancer that live outside the
//! framework ([`TinyRegistry`], [`TakeTurns`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use external_registry::{TakeTurns, TinyRegistry};
use rpc_core::cluster::ClusterConfig;
use rpc_core::{Client, Registry, Server, ServerHandle, ServiceKey};

/// An argument type with its serde derives through rpc-core's re-export.
#[derive(Debug, Clone, PartialEq, rpc_core::serde::Serialize, rpc_core::serde::Deserialize)]
#[serde(crate = "rpc_core::serde")]
pub struct Order {
    pub item: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, rpc_core::serde::Serialize, rpc_core::serde::Deserialize)]
#[serde(crate = "rpc_core::serde")]
pub struct Receipt {
    pub shop: String,
    pub line: String,
}

#[rpc_core::service(name = "external.Shop", version = "1.0.0")]
pub trait Shop {
    async fn place(&self, order: Order) -> Receipt;
}

struct MyShop {
    name: &'static str,
}

impl Shop for MyShop {
    async fn place(&self, order: Order) -> Receipt {
        Receipt {
            shop: self.name.to_string(),
            line: format!("{} x {}", order.count, order.item),
        }
    }
}

async fn start(name: &'static str, registry: &Arc<TinyRegistry>) -> ServerHandle {
    Server::builder()
        .bind("127.0.0.1:0")
        .serve(ShopServer::new(MyShop { name }))
        .registry(registry.clone())
        .propagation_grace(Duration::ZERO)
        .start()
        .await
        .expect("server starts")
}

#[tokio::test]
async fn serves_and_calls_through_an_outside_registry_and_balancer() {
    let registry = Arc::new(TinyRegistry::new());
    let a = start("a", &registry).await;
    let b = start("b", &registry).await;
    let key = ServiceKey::new("external.Shop", "1.0.0");
    assert_eq!(registry.services().await.unwrap(), vec![key.clone()]);
    assert_eq!(registry.discover(&key).await.unwrap().len(), 2);

    let balancer = Arc::new(TakeTurns::default());
    let client = Client::builder()
        .cluster(ClusterConfig::default().balancer(balancer.clone()))
        .discover(registry.clone());
    let shop = ShopClient::new(client);
    let order = Order {
        item: "tea".into(),
        count: 2,
    };

    let mut shops = BTreeSet::new();
    for _ in 0..4 {
        let receipt = shop.place(order.clone()).await.expect("call succeeds");
        assert_eq!(receipt.line, "2 x tea");
        shops.insert(receipt.shop);
    }
    assert_eq!(shops, BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert_eq!(balancer.picks(), 4);
    assert_eq!(balancer.answered(), 4);

    // `a` leaves: its deregistration reaches the client through the watch.
    a.shutdown().await.expect("a shuts down");
    let directory = shop.client().directory().expect("a registry client");
    let entry = directory.cached(&key).expect("looked up already");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while entry.instances().len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch did not deliver a's removal"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let receipt = shop.place(order.clone()).await.expect("call succeeds");
        assert_eq!(receipt.shop, "b");
    }
    assert_eq!(balancer.failed(), 0);

    b.shutdown().await.expect("b shuts down");
    assert!(registry.services().await.unwrap().is_empty());
}
