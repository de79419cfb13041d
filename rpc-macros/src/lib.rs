//! The `#[service]` attribute macro of rpc-core. Use it as `#[rpc_core::service]`.
//!
//! The work is split in steps, each in its own module: `parse` reads the tokens, `validate`
//! checks them and builds the strict `model`, and `expand` emits the code. Errors from any
//! step become `compile_error!`s at the offending token, and `fallback` still emits the trait
//! as written, so that one mistake gives one error.

use proc_macro::TokenStream;

mod expand;
mod fallback;
mod model;
mod parse;
mod validate;

/// Turns a trait of `async fn` methods into an rpc service.
///
/// ```text
/// #[rpc_core::service(name = "example.Greeter", version = "1.0.0")]
/// pub trait Greeter {
///     async fn hello(&self, name: String) -> String;
///     #[idempotent]
///     async fn whoami(&self) -> String;
/// }
/// ```
///
/// Both arguments are optional: `name` defaults to the trait's name, `version` to `"1.0.0"`.
/// `#[idempotent]` on a method marks it safe to retry after a timeout.
///
/// Generates:
/// - the trait itself, with each `async fn m(&self, ..) -> R` declared as
///   `fn m(&self, ..) -> impl Future<Output = R> + Send` and `Send + Sync + 'static` as
///   supertraits; implementations still write `async fn`;
/// - `<Trait>Client`, a client stub with one `async fn m(&self, ..) -> Result<R, RpcError>`
///   per method, plus `DESCRIPTOR`, `new`, `connect`, `discover`, `client`, `options`,
///   `with_options` and `call_with`;
/// - `<Trait>ClientCall<'a>`, what `call_with(&options)` returns: the same methods, calling
///   through the stub's client with borrowed options, for one call without a clone;
/// - `<Trait>Server<T>`, which serves any `T: Trait` as an `rpc_core::Service`.
///
/// Methods must be `async fn` taking `&self` and owned serde arguments, without generics or
/// default bodies; anything else is a compile error that says what to change.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    service_impl(args.into(), input.clone())
        .unwrap_or_else(|error| fallback::expand(input, error))
        .into()
}

fn service_impl(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let input = parse::parse(args, input)?;
    let service = validate::validate(input)?;
    Ok(expand::expand(&service))
}
