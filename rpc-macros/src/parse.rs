//! Syntax: turns the attribute's arguments and the annotated item into a loose AST.
//!
//! Only what can be wrong with the *shape* of the tokens is reported here (the item is not a
//! trait, an attribute argument is not `key = "string"`). What a service may contain is checked
//! in [`crate::validate`].

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, Item, ItemTrait, Lit, LitStr, Meta, Token, TraitItem, TraitItemFn,
};

/// The name of the helper attribute that marks a method as safe to retry.
const IDEMPOTENT: &str = "idempotent";

/// `#[service(name = "...", version = "...")]`, both optional.
#[derive(Default)]
pub struct ServiceArgs {
    /// `name = "..."`.
    pub name: Option<LitStr>,
    /// `version = "..."`.
    pub version: Option<LitStr>,
}

/// The annotated trait, with its methods' helper attributes already picked apart.
pub struct ServiceInput {
    /// The attribute's arguments.
    pub args: ServiceArgs,
    /// The trait as written, its body emptied: the items are in `items`.
    pub item: ItemTrait,
    /// The trait's items, in order.
    pub items: Vec<InputItem>,
}

/// One item of the trait.
pub enum InputItem {
    /// A method, which may or may not be a valid rpc method.
    Method(InputMethod),
    /// Anything else (associated type, const, macro): never valid, kept for its span.
    Other(TraitItem),
}

/// A method of the trait.
pub struct InputMethod {
    /// The `#[idempotent]` attribute, if present.
    pub idempotent: Option<Attribute>,
    /// Every other attribute (docs included), in order.
    pub attrs: Vec<Attribute>,
    /// The method as written, minus the attributes above.
    pub func: TraitItemFn,
}

/// Parses both token streams the attribute receives.
pub fn parse(args: TokenStream, input: TokenStream) -> syn::Result<ServiceInput> {
    let args = ServiceArgs::parse.parse2(args)?;
    let mut item = parse_trait(input)?;
    let items = std::mem::take(&mut item.items)
        .into_iter()
        .map(parse_item)
        .collect::<syn::Result<_>>()?;
    Ok(ServiceInput { args, item, items })
}

impl Parse for ServiceArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = ServiceArgs::default();
        for meta in Punctuated::<Meta, Token![,]>::parse_terminated(input)? {
            args.set(meta)?;
        }
        Ok(args)
    }
}

impl ServiceArgs {
    /// Records one `key = "value"` argument.
    fn set(&mut self, meta: Meta) -> syn::Result<()> {
        let Some(key) = meta.path().get_ident().map(ToString::to_string) else {
            return Err(unknown_arg(&meta));
        };
        let slot = match key.as_str() {
            "name" => &mut self.name,
            "version" => &mut self.version,
            _ => return Err(unknown_arg(&meta)),
        };
        if slot.is_some() {
            return Err(syn::Error::new_spanned(
                meta.path(),
                format!("`{key}` is given twice; keep one `{key} = \"...\"`"),
            ));
        }
        *slot = Some(string_value(&key, meta)?);
        Ok(())
    }
}

fn unknown_arg(meta: &Meta) -> syn::Error {
    syn::Error::new_spanned(
        meta.path(),
        "unknown `#[service]` argument; the supported ones are `name = \"...\"` and `version = \"...\"`",
    )
}

/// The string literal of `key = "value"`.
fn string_value(key: &str, meta: Meta) -> syn::Result<LitStr> {
    let expected = || format!("expected `{key} = \"...\"` with a string literal");
    match meta {
        Meta::NameValue(nv) => match nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => Ok(lit),
            value => Err(syn::Error::new_spanned(value, expected())),
        },
        other => Err(syn::Error::new_spanned(other, expected())),
    }
}

/// Parses the annotated item, which must be a trait.
fn parse_trait(input: TokenStream) -> syn::Result<ItemTrait> {
    match syn::parse2::<Item>(input)? {
        Item::Trait(item) => Ok(item),
        other => Err(syn::Error::new(
            item_span(&other),
            "`#[service]` goes on a trait: write `pub trait Name { async fn method(&self, ...) -> T; }`",
        )),
    }
}

/// Where to point at an item that is not a trait: its name when it has one.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(s) => s.ident.span(),
        Item::Enum(e) => e.ident.span(),
        Item::Union(u) => u.ident.span(),
        Item::Fn(f) => f.sig.ident.span(),
        Item::Mod(m) => m.ident.span(),
        Item::Type(t) => t.ident.span(),
        Item::Impl(i) => i.impl_token.span,
        other => other.span(),
    }
}

/// Whether `attr` is the `#[idempotent]` helper attribute (with or without arguments).
pub fn is_idempotent(attr: &Attribute) -> bool {
    attr.path().is_ident(IDEMPOTENT)
}

/// Picks the helper attributes off a method; leaves other items alone.
fn parse_item(item: TraitItem) -> syn::Result<InputItem> {
    let TraitItem::Fn(mut func) = item else {
        return Ok(InputItem::Other(item));
    };
    let mut idempotent = None;
    let mut attrs = Vec::new();
    for attr in std::mem::take(&mut func.attrs) {
        if !is_idempotent(&attr) {
            attrs.push(attr);
            continue;
        }
        if !matches!(attr.meta, Meta::Path(_)) {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "`#[idempotent]` takes no arguments; write just `#[idempotent]`",
            ));
        }
        if idempotent.is_some() {
            return Err(syn::Error::new_spanned(
                &attr,
                "`#[idempotent]` is given twice; keep one",
            ));
        }
        idempotent = Some(attr);
    }
    Ok(InputItem::Method(InputMethod {
        idempotent,
        attrs,
        func,
    }))
}
