//! What the attribute emits when it rejects the input: the errors, plus the trait as the user
//! wrote it (minus `#[idempotent]`, which means nothing without the macro).
//!
//! Keeping the trait means a mistake costs one error, the macro's: the user's `impl` of the
//! trait and other code naming it still compile against it, instead of adding a second wave
//! of "cannot find trait" errors. thiserror's `fallback.rs` does the same for derives.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, Item, ItemTrait, Pat, TraitItem};

use crate::parse::is_idempotent;

/// `error` as `compile_error!`s, followed by the input item if it parses as one that rustc
/// itself accepts.
pub fn expand(input: TokenStream, error: syn::Error) -> TokenStream {
    let mut output = error.into_compile_error();
    let Ok(mut item) = syn::parse2::<Item>(input) else {
        return output;
    };
    if let Item::Trait(service_trait) = &mut item {
        if !rustc_accepts(service_trait) {
            return output;
        }
        for trait_item in &mut service_trait.items {
            if let TraitItem::Fn(method) = trait_item {
                method.attrs.retain(|attr| !is_idempotent(attr));
            }
        }
    }
    item.to_tokens(&mut output);
    output
}

/// Whether the trait is valid Rust as written. One that is not (a method named twice, a
/// `const fn`, a variadic or a pattern argument in a method without a body) would add
/// rustc's own errors to the macro's, so it is left out: its impls will not compile anyway.
fn rustc_accepts(service_trait: &ItemTrait) -> bool {
    let mut names = HashSet::new();
    service_trait.items.iter().all(|item| {
        let TraitItem::Fn(method) = item else {
            return true;
        };
        let sig = &method.sig;
        let plain_args = sig.inputs.iter().all(|input| match input {
            FnArg::Receiver(_) => true,
            FnArg::Typed(arg) => match &*arg.pat {
                Pat::Ident(pat) => pat.by_ref.is_none() && pat.mutability.is_none(),
                Pat::Wild(_) => true,
                _ => method.default.is_some(),
            },
        });
        names.insert(sig.ident.to_string())
            && sig.constness.is_none()
            && sig.variadic.is_none()
            && plain_args
    })
}
