//! The model: a service trait that passed every check, in the strict form that
//! [`crate::expand`] emits code from. [`crate::validate`] builds it.

use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Type, TypeParamBound, Visibility};

/// A service trait that passed every check.
pub struct Service {
    /// The service name on the wire and in the registry.
    pub name: String,
    /// The service version.
    pub version: String,
    /// The trait's attributes (docs included).
    pub attrs: Vec<Attribute>,
    /// The trait's visibility, shared by the generated client and server types.
    pub vis: Visibility,
    /// The trait's name.
    pub ident: Ident,
    /// Supertraits the user wrote; `Send + Sync + 'static` are added on expansion.
    pub supertraits: Punctuated<TypeParamBound, Token![+]>,
    /// The methods, in trait order.
    pub methods: Vec<Method>,
}

/// An `async fn m(&self, a: A, ...) -> R` of the trait.
pub struct Method {
    /// Attributes other than `#[idempotent]` (docs included).
    pub attrs: Vec<Attribute>,
    /// The method's name in Rust.
    pub ident: Ident,
    /// The method's name on the wire (`ident` without any `r#`).
    pub wire_name: String,
    /// The arguments after `&self`.
    pub args: Vec<Arg>,
    /// The return type; `()` when the method declares none.
    pub output: Type,
    /// Marked `#[idempotent]`.
    pub idempotent: bool,
}

/// One `name: Type` argument.
pub struct Arg {
    /// The argument's name.
    pub ident: Ident,
    /// Its (owned) type.
    pub ty: Type,
}

impl Service {
    /// The service key, `<name>:<version>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }
}
