//! Code generation: the rewritten trait, the client stub and the server adapter.
//!
//! Every path is absolute through `::rpc_core`, so the generated code works wherever the user
//! puts the trait. Local variables get `Span::mixed_site()` so that a user's argument called
//! `codec` or `inner` cannot shadow them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Type};

use crate::model::{Method, Service};

mod client;
mod server;

use client::client;
use server::server;

/// The whole output of the attribute.
pub fn expand(service: &Service) -> TokenStream {
    let names = Names::new(service);
    let service_trait = service_trait(service);
    let client = client(service, &names);
    let server = server(service, &names);
    quote! {
        #service_trait
        #client
        #server
    }
}

/// Names and literals shared by the generated items.
struct Names {
    /// `<Trait>Client`.
    client: Ident,
    /// `<Trait>ClientCall`: the stub's client with borrowed options.
    client_call: Ident,
    /// `<Trait>Server`.
    server: Ident,
    /// `"<name>:<version>"`.
    key: LitStr,
    /// `#[cfg]` attributes of the trait, repeated on every generated item so that they all
    /// exist or vanish together.
    cfgs: Vec<Attribute>,
}

impl Names {
    fn new(service: &Service) -> Names {
        let ident = &service.ident;
        Names {
            client: format_ident!("{}Client", ident),
            client_call: format_ident!("{}ClientCall", ident),
            server: format_ident!("{}Server", ident),
            key: LitStr::new(&service.key(), Span::call_site()),
            cfgs: service
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("cfg"))
                .cloned()
                .collect(),
        }
    }
}

/// A hygienic local variable name.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The trait, with `async fn` turned into `fn -> impl Future + Send` and `Send + Sync +
/// 'static` added, so that a served implementation can run on a multi-threaded runtime.
fn service_trait(service: &Service) -> TokenStream {
    let Service {
        attrs,
        vis,
        ident,
        supertraits,
        ..
    } = service;
    let supertraits = supertraits.iter();
    let methods = service.methods.iter().map(trait_method);
    quote! {
        #(#attrs)*
        #vis trait #ident: #(#supertraits +)* ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

fn trait_method(method: &Method) -> TokenStream {
    let Method {
        attrs,
        ident,
        output,
        ..
    } = method;
    let params = params(method);
    quote! {
        #(#attrs)*
        fn #ident(&self, #params)
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send;
    }
}

/// `a: A, b: B` as the user wrote them.
fn params(method: &Method) -> TokenStream {
    let params = method.args.iter().map(|arg| {
        let (ident, ty) = (&arg.ident, &arg.ty);
        quote!(#ident: #ty)
    });
    quote!(#(#params),*)
}
/// `Type: WireType,` for each argument and the return type, spanned on the type: a type that
/// cannot travel gets its one error there. Within the item, the bound then holds, so the
/// generated body adds no errors of its own (and identical errors at one span are shown once).
fn wire_bounds(method: &Method) -> Vec<TokenStream> {
    let types = method.args.iter().map(|arg| &arg.ty);
    types
        .chain(std::iter::once(&method.output))
        .map(|ty| quote_spanned!(ty.span()=> #ty: ::rpc_core::__private::WireType,))
        .collect()
}

/// Whether `ty` is spelled `Vec<u8>` (or `std::vec::Vec<u8>`, `alloc::vec::Vec<u8>`). Such
/// values travel through `serde_bytes`: the same bytes on the wire in bincode and JSON, but
/// one copy instead of a call per byte.
fn is_byte_vec(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    if path.qself.is_some() {
        return false;
    }
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Vec" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(
        args.args.first(),
        Some(syn::GenericArgument::Type(Type::Path(inner)))
            if args.args.len() == 1 && inner.qself.is_none() && inner.path.is_ident("u8")
    )
}
