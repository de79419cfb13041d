use rpc_core::serde::Deserialize;

#[derive(Deserialize)]
#[serde(crate = "rpc_core::serde")]
pub struct Point {
    pub x: i32,
}

#[rpc_core::service]
pub trait Plotter {
    async fn plot(&self, name: String, point: Point) -> u32;
}

fn main() {}
