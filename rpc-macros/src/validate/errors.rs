//! Error collection, so that one build reports every problem, each at its own token.

use proc_macro2::Span;

/// Collects errors so that all of them are reported, not just the first.
#[derive(Default)]
pub(super) struct Errors(Option<syn::Error>);

impl Errors {
    pub(super) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(super) fn error(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Keeps the value when it is `Ok`, records the error otherwise.
    pub(super) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub(super) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    /// `value` if no error was recorded. Callers pass `None` only after recording why.
    pub(super) fn finish_with<T>(self, value: Option<T>) -> syn::Result<T> {
        self.finish()?;
        value.ok_or_else(|| {
            syn::Error::new(Span::call_site(), "rpc-macros bug: a check failed silently")
        })
    }
}
