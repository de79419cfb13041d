// A rejected trait is still emitted as written: the impl below adds no error of its own,
// so the macro's error is the only one.
#[rpc_core::service]
pub trait Greeter {
    fn hello(&self, name: String) -> String;
    #[idempotent]
    async fn whoami(&self) -> String;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    fn hello(&self, name: String) -> String {
        name
    }

    async fn whoami(&self) -> String {
        String::new()
    }
}

fn main() {
    let greeter = MyGreeter;
    let _ = Greeter::hello(&greeter, "bob".to_string());
}
