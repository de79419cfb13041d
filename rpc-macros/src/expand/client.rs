//! The client stub: a struct with the descriptor, constructors and one method per rpc method.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, LitStr};

use super::{is_byte_vec, params, wire_bounds, Names};
use crate::model::{Method, Service};

/// The client stub: a struct with the descriptor, constructors and one method per rpc method.
pub(super) fn client(service: &Service, names: &Names) -> TokenStream {
    let Names {
        client,
        client_call,
        key,
        cfgs,
        ..
    } = names;
    let vis = &service.vis;
    let (name, version) = (&service.name, &service.version);
    let doc = format!(
        "Client stub for the `{name}` service (version `{version}`), generated from [`{}`].\n\n\
         Each method encodes its arguments, sends them to a provider and decodes the reply.",
        service.ident
    );
    let descriptor = descriptor(service, key);
    let call_doc = format!(
        "A [`{client}`]'s client with options borrowed for one call, from \
         [`{client}::call_with`]: the same methods, nothing cloned."
    );
    let methods = service
        .methods
        .iter()
        .enumerate()
        .map(|(index, method)| client_method(index, method, client));
    let delegates = service.methods.iter().map(delegate_method);
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            client: ::rpc_core::Client,
            options: ::rpc_core::CallOptions,
        }

        #(#cfgs)*
        impl #client {
            #descriptor

            /// A stub that calls through `client` with default call options.
            pub fn new(client: ::rpc_core::Client) -> Self {
                Self {
                    client,
                    options: ::core::default::Default::default(),
                }
            }

            /// A stub connected directly to one provider at `addr`, without a registry.
            pub async fn connect(addr: &str) -> ::core::result::Result<Self, ::rpc_core::RpcError> {
                ::core::result::Result::Ok(Self::new(::rpc_core::Client::connect(addr).await?))
            }

            /// A stub that finds providers in `registry` and balances calls over them.
            pub fn discover(
                registry: ::std::sync::Arc<dyn ::rpc_core::Registry>,
            ) -> Self {
                Self::new(::rpc_core::Client::discover(registry))
            }

            /// The underlying client.
            pub fn client(&self) -> &::rpc_core::Client {
                &self.client
            }

            /// The options every call of this stub uses.
            pub fn options(&self) -> &::rpc_core::CallOptions {
                &self.options
            }

            /// A copy of this stub whose calls use `options`; to keep.
            pub fn with_options(&self, options: ::rpc_core::CallOptions) -> Self {
                Self {
                    client: ::core::clone::Clone::clone(&self.client),
                    options,
                }
            }

            /// This stub's calls with `options` instead of its own, borrowing both: for one
            /// call, `stub.call_with(&options).method(args)`, nothing cloned.
            pub fn call_with<'a>(&'a self, options: &'a ::rpc_core::CallOptions) -> #client_call<'a> {
                #client_call {
                    client: &self.client,
                    options,
                }
            }

            #(#delegates)*
        }

        #(#cfgs)*
        #[doc = #call_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #client_call<'a> {
            client: &'a ::rpc_core::Client,
            options: &'a ::rpc_core::CallOptions,
        }

        #(#cfgs)*
        impl<'a> #client_call<'a> {
            #(#methods)*
        }
    }
}

/// `DESCRIPTOR`: the service's name, version, key and methods in trait order.
fn descriptor(service: &Service, key: &LitStr) -> TokenStream {
    let (name, version) = (&service.name, &service.version);
    let doc = format!("The static description of the `{name}` service.");
    let methods = service.methods.iter().map(|method| {
        let (name, idempotent) = (&method.wire_name, method.idempotent);
        quote! {
            ::rpc_core::MethodDescriptor {
                name: #name,
                idempotent: #idempotent,
            }
        }
    });
    quote! {
        #[doc = #doc]
        pub const DESCRIPTOR: &'static ::rpc_core::ServiceDescriptor = &::rpc_core::ServiceDescriptor {
            name: #name,
            version: #version,
            key: #key,
            methods: &[#(#methods),*],
        };
    }
}

/// One stub method: calls the same method with the stub's own options.
fn delegate_method(method: &Method) -> TokenStream {
    let Method {
        ident,
        output,
        args,
        ..
    } = method;
    let docs = docs_or(
        &method.attrs,
        &format!("Calls `{}` on a provider.", method.wire_name),
    );
    let params = params(method);
    let wire_bounds = wire_bounds(method);
    let names = args.iter().map(|arg| &arg.ident);
    quote! {
        #(#docs)*
        pub async fn #ident(&self, #params)
            -> ::core::result::Result<#output, ::rpc_core::RpcError>
        where
            #(#wire_bounds)*
        {
            self.call_with(&self.options).#ident(#(#names),*).await
        }
    }
}

/// One call-view method: the arguments travel as one tuple, the return value as itself.
fn client_method(index: usize, method: &Method, client: &syn::Ident) -> TokenStream {
    let Method {
        ident,
        output,
        args,
        ..
    } = method;
    let docs = docs_or(
        &method.attrs,
        &format!("Calls `{}` on a provider.", method.wire_name),
    );
    let params = params(method);
    let wire_bounds = wire_bounds(method);
    let arg_values = args.iter().map(|arg| {
        let name = &arg.ident;
        if is_byte_vec(&arg.ty) {
            quote!(::rpc_core::__private::serde_bytes::Bytes::new(&#name))
        } else {
            quote!(#name)
        }
    });
    let (reply_type, from_reply) = if is_byte_vec(output) {
        (
            quote!(::rpc_core::__private::serde_bytes::ByteBuf),
            quote!(.map(::rpc_core::__private::serde_bytes::ByteBuf::into_vec)),
        )
    } else {
        (quote!(#output), quote!())
    };
    quote! {
        #(#docs)*
        pub async fn #ident(&self, #params)
            -> ::core::result::Result<#output, ::rpc_core::RpcError>
        where
            #(#wire_bounds)*
        {
            self.client
                .call::<_, #reply_type>(
                    #client::DESCRIPTOR,
                    // A place behind the `&'static` descriptor, so the borrow is `'static` too.
                    &#client::DESCRIPTOR.methods[#index],
                    &(#(#arg_values,)*),
                    self.options,
                )
                .await
                #from_reply
        }
    }
}

/// The method's doc attributes, or one with `fallback` when it has none.
fn docs_or(attrs: &[Attribute], fallback: &str) -> Vec<TokenStream> {
    let docs: Vec<TokenStream> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .map(|attr| quote!(#attr))
        .collect();
    if docs.is_empty() {
        vec![quote!(#[doc = #fallback])]
    } else {
        docs
    }
}
