//! Semantics: checks that the parsed trait is something `#[service]` can serve, and turns it
//! into the strict [`crate::model::Service`] model that [`crate::expand`] emits code from.
//!
//! Every problem found is reported, each at the token it is about, so that one build shows the
//! user all of them.

use syn::ext::IdentExt;
use syn::{Ident, LitStr, TraitItem};

mod errors;
mod method;

use crate::model::{Method, Service};
use crate::parse::{InputItem, ServiceArgs, ServiceInput};
use errors::Errors;
use method::method_model;

/// The version a service gets when the attribute names none.
const DEFAULT_VERSION: &str = "1.0.0";

/// Names of the client stub's inherent items, which an rpc method must not shadow.
const RESERVED: &[&str] = &[
    "new",
    "connect",
    "discover",
    "client",
    "options",
    "with_options",
    "call_with",
    "DESCRIPTOR",
];

/// Checks the parsed input and builds the model.
pub fn validate(input: ServiceInput) -> syn::Result<Service> {
    let mut errors = Errors::default();
    let ServiceInput { args, item, items } = input;
    check_trait_header(&item, &mut errors);
    let (name, version) = names(&args, &item.ident, &mut errors);
    let client = format!("{}Client", item.ident.unraw());
    let methods: Vec<Method> = items
        .into_iter()
        .filter_map(|item| match item {
            InputItem::Method(method) => errors.take(method_model(method)),
            InputItem::Other(other) => {
                errors.push(other_item_error(&other));
                None
            }
        })
        .collect();
    check_method_names(&methods, &client, &mut errors);
    errors.finish()?;
    Ok(Service {
        name,
        version,
        attrs: item.attrs,
        vis: item.vis,
        ident: item.ident,
        supertraits: item.supertraits,
        methods,
    })
}

/// The trait itself: no `unsafe`, no `auto`, no generics.
fn check_trait_header(item: &syn::ItemTrait, errors: &mut Errors) {
    if let Some(unsafety) = &item.unsafety {
        errors.error(
            unsafety,
            "rpc service traits cannot be `unsafe`; remove `unsafe`",
        );
    }
    if let Some(auto) = &item.auto_token {
        errors.error(
            auto,
            "rpc service traits cannot be `auto` traits; remove `auto`",
        );
    }
    if !item.generics.params.is_empty() {
        errors.error(
            &item.generics,
            "rpc service traits cannot be generic: calls are decoded by method name at run time, \
             so every argument and return type must be concrete; remove the generic parameters",
        );
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.error(
            where_clause,
            "rpc service traits cannot have a `where` clause; remove it",
        );
    }
}

/// The service name and version: from the arguments, or the defaults.
fn names(args: &ServiceArgs, ident: &Ident, errors: &mut Errors) -> (String, String) {
    let name = match &args.name {
        Some(lit) => errors.take(checked_label(lit, "name")),
        None => Some(ident.unraw().to_string()),
    };
    let version = match &args.version {
        Some(lit) => errors.take(checked_label(lit, "version")),
        None => Some(DEFAULT_VERSION.to_string()),
    };
    // On error the values are never used: `validate` returns the errors instead.
    (name.unwrap_or_default(), version.unwrap_or_default())
}

/// A name or version: it becomes part of the key `<name>:<version>` and of the registry path
/// `/rpc/<key>/<addr>`, so it must be non-empty and free of `:` and `/`.
fn checked_label(lit: &LitStr, what: &str) -> syn::Result<String> {
    let value = lit.value();
    let problem = if value.trim().is_empty() {
        Some("must not be empty")
    } else if value.contains(':') {
        Some("must not contain `:`, which separates the name from the version in the service key")
    } else if value.contains('/') {
        Some("must not contain `/`, which separates the parts of a registry path")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(syn::Error::new_spanned(
            lit,
            format!("the service {what} {problem}; e.g. `name = \"example.Greeter\", version = \"1.0.0\"`"),
        )),
        None => Ok(value),
    }
}

/// The error for a trait item that is not a method.
fn other_item_error(item: &TraitItem) -> syn::Error {
    let what = match item {
        TraitItem::Const(_) => "associated consts",
        TraitItem::Type(_) => "associated types",
        TraitItem::Macro(_) => "macro invocations",
        _ => "this kind of item",
    };
    syn::Error::new_spanned(
        item,
        format!(
            "rpc service traits cannot contain {what}; only `async fn` methods taking `&self` are allowed"
        ),
    )
}

/// Methods are dispatched by name, so names must be unique, and must not shadow the client
/// stub's own inherent items.
fn check_method_names(methods: &[Method], client: &str, errors: &mut Errors) {
    for (i, method) in methods.iter().enumerate() {
        let name = &method.wire_name;
        if RESERVED.contains(&name.as_str()) {
            errors.error(
                &method.ident,
                format!(
                    "`{name}` cannot be an rpc method name: the generated `{client}` already has \
                     an inherent `{name}`; rename the method"
                ),
            );
        }
        if methods[..i].iter().any(|m| m.wire_name == *name) {
            errors.error(
                &method.ident,
                format!(
                    "duplicate rpc method `{name}`: methods are dispatched by name, so each needs \
                     a unique one; rename or remove this one"
                ),
            );
        }
    }
}
