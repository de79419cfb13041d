//! The server adapter: a `Service` that decodes arguments and calls the implementation.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, LitStr};

use super::{is_byte_vec, local, wire_bounds, Names};
use crate::model::{Method, Service};

/// The server adapter: a `Service` that decodes arguments and calls the implementation.
pub(super) fn server(service: &Service, names: &Names) -> TokenStream {
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
