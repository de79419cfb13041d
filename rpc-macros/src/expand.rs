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

/// The client stub: a struct with the descriptor, constructors and one method per rpc method.
fn client(service: &Service, names: &Names) -> TokenStream {
    let Names {
        client, key, cfgs, ..
    } = names;
    let vis = &service.vis;
    let (name, version) = (&service.name, &service.version);
    let doc = format!(
        "Client stub for the `{name}` service (version `{version}`), generated from [`{}`].\n\n\
         Each method encodes its arguments, sends them to a provider and decodes the reply.",
        service.ident
    );
    let descriptor = descriptor(service, key);
    let methods = service
        .methods
        .iter()
        .enumerate()
        .map(|(index, method)| client_method(index, method));
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

            /// A copy of this stub whose calls use `options`.
            pub fn with_options(&self, options: ::rpc_core::CallOptions) -> Self {
                Self {
                    client: ::core::clone::Clone::clone(&self.client),
                    options,
                }
            }

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

/// One stub method: the arguments travel as one tuple, the return value as itself.
fn client_method(index: usize, method: &Method) -> TokenStream {
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
                    Self::DESCRIPTOR,
                    // A place behind the `&'static` descriptor, so the borrow is `'static` too.
                    &Self::DESCRIPTOR.methods[#index],
                    &(#(#arg_values,)*),
                    &self.options,
                )
                .await
                #from_reply
        }
    }
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

/// The server adapter: a `Service` that decodes arguments and calls the implementation.
fn server(service: &Service, names: &Names) -> TokenStream {
    let Names {
        client,
        server,
        cfgs,
        ..
    } = names;
    let (vis, ident) = (&service.vis, &service.ident);
    let doc = format!(
        "Serves an implementation of [`{ident}`] as the `{}` service (version `{}`).",
        service.name, service.version
    );
    let call = server_call(service, names);
    let wire_bounds = service.methods.iter().flat_map(wire_bounds);
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #vis struct #server<T: #ident> {
            inner: ::rpc_core::__private::Arc<T>,
        }

        #(#cfgs)*
        impl<T: #ident> #server<T> {
            /// Serves `inner`.
            pub fn new(inner: T) -> Self {
                Self::from_arc(::rpc_core::__private::Arc::new(inner))
            }

            /// Serves an implementation that is shared with other code.
            pub fn from_arc(inner: ::rpc_core::__private::Arc<T>) -> Self {
                Self { inner }
            }
        }

        // By hand rather than derived: a derive would require `T: Clone`.
        #(#cfgs)*
        impl<T: #ident> ::core::clone::Clone for #server<T> {
            fn clone(&self) -> Self {
                Self::from_arc(::rpc_core::__private::Arc::clone(&self.inner))
            }
        }

        // By hand rather than derived: a derive would require `T: Debug`.
        #(#cfgs)*
        impl<T: #ident> ::core::fmt::Debug for #server<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server)).finish_non_exhaustive()
            }
        }

        #(#cfgs)*
        impl<T: #ident> ::rpc_core::Service for #server<T>
        where
            #(#wire_bounds)*
        {
            fn descriptor(&self) -> &'static ::rpc_core::ServiceDescriptor {
                #client::DESCRIPTOR
            }

            #call
        }
    }
}

/// `Service::call`: one match arm per method, by wire name.
fn server_call(service: &Service, names: &Names) -> TokenStream {
    let key = &names.key;
    let (method, codec, body) = (local("method"), local("codec"), local("body"));
    let arms = service
        .methods
        .iter()
        .map(|m| server_arm(&service.ident, m, key));
    quote! {
        fn call(
            &self,
            #method: &str,
            #codec: ::rpc_core::Codec,
            #body: ::rpc_core::__private::Bytes,
        ) -> ::core::result::Result<::rpc_core::ResponseFuture, ::rpc_core::DispatchError> {
            match #method {
                #(#arms)*
                _ => ::core::result::Result::Err(::rpc_core::DispatchError::UnknownMethod {
                    service: #key,
                    method: ::std::string::ToString::to_string(#method),
                }),
            }
        }
    }
}

/// The arm for one method: decode the tuple, then run the handler in a `'static` future that
/// owns a clone of the `Arc`.
fn server_arm(trait_ident: &Ident, method: &Method, key: &LitStr) -> TokenStream {
    let (codec, body, inner, out, future, source) = (
        local("codec"),
        local("body"),
        local("inner"),
        local("out"),
        local("future"),
        local("source"),
    );
    let Method {
        ident, wire_name, ..
    } = method;
    let vars: Vec<Ident> = (0..method.args.len())
        .map(|i| local(&format!("arg{i}")))
        .collect();
    let types = method.args.iter().map(|arg| {
        if is_byte_vec(&arg.ty) {
            quote!(::rpc_core::__private::serde_bytes::ByteBuf)
        } else {
            let ty = &arg.ty;
            quote!(#ty)
        }
    });
    let unwrap_bytes = method
        .args
        .iter()
        .zip(&vars)
        .filter(|(arg, _)| is_byte_vec(&arg.ty))
        .map(|(_, var)| quote!(let #var = #var.into_vec();));
    let encode = if is_byte_vec(&method.output) {
        quote!(#codec.encode(&::rpc_core::__private::serde_bytes::Bytes::new(&#out)))
    } else {
        quote!(#codec.encode(&#out))
    };
    quote! {
        #wire_name => {
            let (#(#vars,)*) = #codec
                .decode::<(#(#types,)*)>(&#body)
                .map_err(|#source| ::rpc_core::DispatchError::BadRequest {
                    service: #key,
                    method: #wire_name,
                    source: #source,
                })?;
            #(#unwrap_bytes)*
            let #inner = ::rpc_core::__private::Arc::clone(&self.inner);
            let #future: ::rpc_core::ResponseFuture = ::std::boxed::Box::pin(async move {
                // Fully qualified, so no other trait's method of the same name can be picked.
                let #out = <T as #trait_ident>::#ident(&*#inner, #(#vars),*).await;
                #encode
            });
            ::core::result::Result::Ok(#future)
        }
    }
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
