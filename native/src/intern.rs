//! One shared copy of the texts and product facts that recur across sessions: a detector holds
//! thousands of sessions that viewed and carted the same products of the same stores, and each
//! keeps a pointer to one copy instead of its own strings.
//!
//! An entry is dropped once only the interner holds it: when the set has grown past twice its
//! size after the previous purge, every entry no session refers to any more goes, so the set
//! stays within a constant factor of what the live sessions use and a purge costs amortised
//! O(1) per insertion. Equal values give the same `Arc` while one is held, so whether a value
//! was interned before has no effect on what the detector decides or writes.

use std::hash::Hash;
use std::sync::Arc;

use hashbrown::HashSet;

use crate::money::Money;

/// Below this many entries a set is never purged (the scan would cost more than it frees).
const MIN_PURGE_AT: usize = 1024;

/// The facts a viewed product or a cart line keeps, as the latest events gave them; a viewed
/// product has no image and no currency. Shared: two sessions with the same facts hold one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Facts {
    pub price: Option<Money>,
    pub name: Option<Arc<str>>,
    pub url: Option<Arc<str>>,
    pub image_url: Option<Arc<str>>,
    pub currency: Option<Arc<str>>,
}

/// Changes one event brings to a product's facts; `None` keeps what was there.
#[derive(Clone, Copy, Default)]
pub struct Update<'a> {
    pub price: Option<Money>,
    pub name: Option<&'a str>,
    pub url: Option<&'a str>,
    pub image_url: Option<&'a str>,
    pub currency: Option<&'a str>,
}

struct Set<T: ?Sized> {
    items: HashSet<Arc<T>>,
    purge_at: usize,
}

impl<T: ?Sized + Hash + Eq> Set<T> {
    fn new() -> Set<T> {
        Set {
            items: HashSet::new(),
            purge_at: MIN_PURGE_AT,
        }
    }

    fn get<Q>(&mut self, value: &Q, make: impl FnOnce(&Q) -> Arc<T>) -> Arc<T>
    where
        Q: ?Sized + Hash + hashbrown::Equivalent<Arc<T>>,
    {
        if let Some(item) = self.items.get(value) {
            return Arc::clone(item);
        }
        let item = make(value);
        self.items.insert(Arc::clone(&item));
        if self.items.len() > self.purge_at {
            self.items.retain(|held| Arc::strong_count(held) > 1);
            self.purge_at = MIN_PURGE_AT.max(2 * self.items.len());
        }
        item
    }
}

/// A detector's shared texts and facts.
pub struct Interner {
    texts: Set<str>,
    facts: Set<Facts>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::new()
    }
}

impl Interner {
    pub fn new() -> Interner {
        Interner {
            texts: Set::new(),
            facts: Set::new(),
        }
    }

    pub fn text(&mut self, text: &str) -> Arc<str> {
        self.texts.get(text, |text| Arc::from(text))
    }

    pub fn opt_text(&mut self, text: Option<&str>) -> Option<Arc<str>> {
        text.map(|text| self.text(text))
    }

    pub fn facts(&mut self, facts: Facts) -> Arc<Facts> {
        self.facts.get(&facts, |facts| Arc::new(facts.clone()))
    }

    /// `old` with this event's changes: the same `Arc` when nothing changes (the usual case).
    pub fn update(&mut self, old: &Arc<Facts>, update: Update) -> Arc<Facts> {
        let same = |held: &Option<Arc<str>>, new: Option<&str>| {
            new.is_none_or(|new| held.as_deref() == Some(new))
        };
        if update.price.is_none_or(|price| old.price == Some(price))
            && same(&old.name, update.name)
            && same(&old.url, update.url)
            && same(&old.image_url, update.image_url)
            && same(&old.currency, update.currency)
        {
            return Arc::clone(old);
        }
        let mut new = Facts::clone(old);
        if update.price.is_some() {
            new.price = update.price;
        }
        for (held, text) in [
            (&mut new.name, update.name),
            (&mut new.url, update.url),
            (&mut new.image_url, update.image_url),
            (&mut new.currency, update.currency),
        ] {
            if let Some(text) = text {
                if held.as_deref() != Some(text) {
                    *held = Some(self.texts.get(text, |text| Arc::from(text)));
                }
            }
        }
        self.facts(new)
    }

    /// Entries held, texts and facts (for tests and diagnostics).
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.texts.items.len(), self.facts.items.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_copy() {
        let mut interner = Interner::new();
        let a = interner.text("sku-1");
        let b = interner.text("sku-1");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn entries_only_the_interner_holds_are_purged() {
        let mut interner = Interner::new();
        let kept = interner.text("kept");
        for i in 0..10 * MIN_PURGE_AT {
            interner.text(&format!("t{i}"));
        }
        let (texts, _) = interner.len();
        assert!(texts <= MIN_PURGE_AT + 1, "{texts} texts held");
        assert!(Arc::ptr_eq(&kept, &interner.text("kept")));
    }

    #[test]
    fn an_update_that_changes_nothing_keeps_the_facts() {
        let mut interner = Interner::new();
        let old = interner.update(
            &Arc::default(),
            Update {
                name: Some("Shoe"),
                ..Update::default()
            },
        );
        let same = interner.update(
            &old,
            Update {
                name: Some("Shoe"),
                ..Update::default()
            },
        );
        assert!(Arc::ptr_eq(&old, &same));
        let renamed = interner.update(
            &old,
            Update {
                name: Some("Boot"),
                ..Update::default()
            },
        );
        assert_eq!(renamed.name.as_deref(), Some("Boot"));
        assert_eq!(old.name.as_deref(), Some("Shoe"));
    }
}
