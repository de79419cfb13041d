#[rpc_core::service]
trait Geometry {
    async fn area(&self, (w, h): (u32, u32)) -> u32;
    async fn scale(&self, mut factor: u32);
    async fn skip(&self, _: u32);
}

fn main() {}
