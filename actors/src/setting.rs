//! A setting the node reads where it uses it and the operator may change while it runs
//! (`spored task use`, `spored set`, SIGHUP): the pinned task, the LLM settings.

use std::sync::{Arc, RwLock};

/// A shared value: clones see each other's [`Setting::set`].
#[derive(Debug, Default)]
pub struct Setting<T>(Arc<RwLock<T>>);

impl<T> Clone for Setting<T> {
    fn clone(&self) -> Self {
        Setting(self.0.clone())
    }
}

impl<T: Clone> Setting<T> {
    pub fn new(value: T) -> Setting<T> {
        Setting(Arc::new(RwLock::new(value)))
    }

    /// The current value.
    pub fn get(&self) -> T {
        match self.0.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the value; readers see it from their next [`Setting::get`].
    pub fn set(&self, value: T) {
        match self.0.write() {
            Ok(mut slot) => *slot = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_sees_a_change() {
        let pinned = Setting::new(None::<String>);
        let seen_by_research = pinned.clone();
        pinned.set(Some("abc".into()));
        assert_eq!(seen_by_research.get().as_deref(), Some("abc"));
    }
}
