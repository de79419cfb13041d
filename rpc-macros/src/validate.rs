//! Semantics: checks that the parsed trait is something `#[service]` can serve, and turns it
//! into the strict [`crate::model::Service`] model that [`crate::expand`] emits code from.
//!
//! Every problem found is reported, each at the token it is about, so that one build shows the
//! user all of them.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, LitStr, Pat, PathArguments, ReturnType, Signature,
    TraitItem, Type,
};

use crate::model::{Arg, Method, Service};
use crate::parse::{InputItem, InputMethod, ServiceArgs, ServiceInput};

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
    "DESCRIPTOR",
];

/// Collects errors so that all of them are reported, not just the first.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn error(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Keeps the value when it is `Ok`, records the error otherwise.
    fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    /// `value` if no error was recorded. Callers pass `None` only after recording why.
    fn finish_with<T>(self, value: Option<T>) -> syn::Result<T> {
        self.finish()?;
        value.ok_or_else(|| {
            syn::Error::new(Span::call_site(), "rpc-macros bug: a check failed silently")
        })
    }
}

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

/// Checks one method and builds its model.
fn method_model(method: InputMethod) -> syn::Result<Method> {
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
