use rpc_core::serde::Serialize;

#[derive(Serialize)]
#[serde(crate = "rpc_core::serde")]
pub struct Point {
    pub x: i32,
}

#[rpc_core::service]
pub trait Plotter {
    async fn origin(&self) -> Point;
    async fn name(&self) -> String;
}

fn main() {}
