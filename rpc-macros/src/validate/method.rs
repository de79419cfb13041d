//! The checks on one method, and its model.

use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type,
};

use super::errors::Errors;
use crate::model::{Arg, Method};
use crate::parse::InputMethod;

/// Checks one method and builds its model.
pub(super) fn method_model(method: InputMethod) -> syn::Result<Method> {
    let mut errors = Errors::default();
    let InputMethod {
        idempotent,
        attrs,
        func,
    } = method;
    check_attrs(&attrs, &mut errors);
    if let Some(body) = &func.default {
        errors.error(
            body,
            "rpc service methods cannot have a default body; end the signature with `;` and \
             implement the method in the `impl` block",
        );
    }
    check_signature(&func.sig, &mut errors);
    let args = method_args(&func.sig, &mut errors);
    let output = match &func.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            check_owned(ty, "return types", &mut errors);
            (**ty).clone()
        }
    };
    errors.finish()?;
    Ok(Method {
        attrs,
        wire_name: func.sig.ident.unraw().to_string(),
        ident: func.sig.ident,
        args,
        output,
        idempotent: idempotent.is_some(),
    })
}

/// `#[cfg]` would remove a method from the trait but not from the descriptor and the dispatch
/// code, which are fixed when the macro runs.
fn check_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.error(
                attr,
                "`#[cfg]` on rpc methods is not supported: the method list is fixed when the \
                 macro runs; put the `#[cfg]` on the whole trait instead",
            );
        }
    }
}

/// Everything about the signature except the arguments.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.error(
            constness,
            "rpc service methods cannot be `const fn`; remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.error(
            unsafety,
            "rpc service methods cannot be `unsafe`; remove `unsafe`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error(
            abi,
            "rpc service methods cannot be `extern`; remove the ABI",
        );
    }
    if sig.asyncness.is_none() {
        let (fn_token, ident) = (&sig.fn_token, &sig.ident);
        errors.error(
            quote::quote!(#fn_token #ident),
            "rpc service methods must be `async fn`; write `async fn` here",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.error(
            &sig.generics,
            "rpc service methods cannot be generic: arguments are decoded at run time, so their \
             types must be concrete; remove the generic parameters",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.error(
            where_clause,
            "rpc service methods cannot have a `where` clause; remove it",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.error(
            variadic,
            "rpc service methods cannot be variadic; remove the `...`",
        );
    }
}

/// Checks the receiver and the arguments; returns the arguments after `&self`.
fn method_args(sig: &Signature, errors: &mut Errors) -> Vec<Arg> {
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver)) => check_receiver(receiver, errors),
        Some(FnArg::Typed(first)) => errors.error(
            first,
            "rpc service methods must take `&self` first; add `&self,` before this argument",
        ),
        None => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "rpc service methods must take `&self`; write `(&self, ...)`",
        )),
    }
    inputs
        .filter_map(|input| match input {
            FnArg::Typed(arg) => errors.take(typed_arg(arg)),
            // syn only accepts `self` in the first position, so this is unreachable in
            // practice; reporting it keeps the macro free of panics all the same.
            FnArg::Receiver(receiver) => {
                errors.error(receiver, "`self` must be the first parameter");
                None
            }
        })
        .collect()
}

/// The receiver must be exactly `&self`: calls run concurrently on one shared service.
fn check_receiver(receiver: &syn::Receiver, errors: &mut Errors) {
    let message = if receiver.colon_token.is_some() {
        "rpc service methods must take plain `&self`; typed receivers like `self: Arc<Self>` are \
         not supported"
    } else if receiver.reference.is_none() {
        "rpc service methods must take `&self`, not `self` by value: one service instance \
         serves every call; write `&self`"
    } else if receiver.mutability.is_some() {
        "rpc service methods cannot take `&mut self`: concurrent calls share the service; take \
         `&self` and use interior mutability (a `Mutex`, an atomic) for state"
    } else if matches!(&receiver.reference, Some((_, Some(_)))) {
        "rpc service methods must take `&self` without a lifetime; remove the lifetime"
    } else {
        return;
    };
    errors.error(receiver, message);
}

/// An argument after `&self`: a plain name and an owned type.
fn typed_arg(arg: &syn::PatType) -> syn::Result<Arg> {
    let mut errors = Errors::default();
    if let Some(attr) = arg.attrs.first() {
        errors.error(
            attr,
            "attributes on rpc method arguments are not supported; remove it",
        );
    }
    let ident = errors.take(arg_name(&arg.pat));
    check_owned(&arg.ty, "arguments", &mut errors);
    let ident = errors.finish_with(ident)?;
    Ok(Arg {
        ident,
        ty: (*arg.ty).clone(),
    })
}

/// The argument's name: the client stub's parameters reuse it, so it must be a plain name.
fn arg_name(pat: &Pat) -> syn::Result<Ident> {
    match pat {
        Pat::Ident(pat)
            if pat.by_ref.is_none() && pat.mutability.is_none() && pat.subpat.is_none() =>
        {
            Ok(pat.ident.clone())
        }
        pat => Err(syn::Error::new_spanned(
            pat,
            "rpc method arguments must be plain names like `name: String` (no `mut`, `ref`, `_` \
             or destructuring patterns)",
        )),
    }
}

/// Arguments are deserialized on the server and return values on the client, so both must be
/// owned (`DeserializeOwned`) and concrete: no references, borrowed lifetimes, `impl Trait`,
/// `dyn Trait`, raw pointers or `Self` anywhere in the type.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    let problem = match ty {
        Type::Reference(_) => Some(
            "cannot be references: they are deserialized into owned values; use an owned type \
             such as `String` for `&str` or `Vec<T>` for `&[T]`",
        ),
        Type::ImplTrait(_) => Some("cannot be `impl Trait`: they must be concrete serde types"),
        Type::TraitObject(_) => Some("cannot be `dyn Trait`: they must be concrete serde types"),
        Type::Ptr(_) => Some("cannot be raw pointers: they must be serde types"),
        Type::BareFn(_) => Some("cannot be function pointers: they must be serde types"),
        Type::Infer(_) => Some("cannot be `_`: write the type out"),
        Type::Paren(inner) => return check_owned(&inner.elem, what, errors),
        Type::Group(inner) => return check_owned(&inner.elem, what, errors),
        Type::Array(array) => return check_owned(&array.elem, what, errors),
        Type::Slice(slice) => return check_owned(&slice.elem, what, errors),
        Type::Tuple(tuple) => {
            return tuple
                .elems
                .iter()
                .for_each(|t| check_owned(t, what, errors));
        }
        Type::Path(path) => return check_path(path, what, errors),
        _ => None,
    };
    if let Some(problem) = problem {
        errors.error(ty, format!("rpc method {what} {problem}"));
    }
}

/// A path type: no `Self`, no borrowed lifetimes, and every type argument owned too.
fn check_path(path: &syn::TypePath, what: &str, errors: &mut Errors) {
    if let Some(qself) = &path.qself {
        check_owned(&qself.ty, what, errors);
    }
    if path.qself.is_none()
        && path
            .path
            .segments
            .first()
            .is_some_and(|s| s.ident == "Self")
    {
        errors.error(
            path,
            format!(
                "rpc method {what} cannot use `Self`: the client and the server see different \
                 `Self` types; name the type"
            ),
        );
    }
    for segment in &path.path.segments {
        match &segment.arguments {
            PathArguments::AngleBracketed(generic) => {
                for arg in &generic.args {
                    check_generic_arg(arg, what, errors);
                }
            }
            PathArguments::Parenthesized(fn_args) => {
                fn_args
                    .inputs
                    .iter()
                    .for_each(|t| check_owned(t, what, errors));
                if let ReturnType::Type(_, output) = &fn_args.output {
                    check_owned(output, what, errors);
                }
            }
            PathArguments::None => {}
        }
    }
}

fn check_generic_arg(arg: &GenericArgument, what: &str, errors: &mut Errors) {
    match arg {
        GenericArgument::Type(ty) => check_owned(ty, what, errors),
        GenericArgument::AssocType(assoc) => check_owned(&assoc.ty, what, errors),
        GenericArgument::Lifetime(lifetime) if lifetime.ident != "static" => errors.error(
            lifetime,
            format!(
                "rpc method {what} cannot borrow: they are deserialized into owned values; use \
                 `'static` or an owned type"
            ),
        ),
        _ => {}
    }
}
