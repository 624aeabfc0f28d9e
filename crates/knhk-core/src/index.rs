//! Typed indices: a net, a task and a place of a validated workflow each have their own index
//! type, and a vector indexed by one takes no other, so a task index can never look up a place.
//!
//! Lookups return an `Option` (or a [`Error::Misfit`] through [`IxVec::at`]): an index that
//! does not fit means a case built for another workflow, never a reason to panic.

use std::fmt;
use std::marker::PhantomData;

use crate::error::Error;

/// An index into an [`IxVec`]: a `u32` that says what it counts.
pub(crate) trait Idx: Copy + Eq + fmt::Debug {
    /// What the index counts, for [`Error::Misfit`].
    const WHAT: &'static str;

    /// Returns the index with this number.
    fn from_raw(i: u32) -> Self;

    /// Returns the number of this index.
    fn raw(self) -> u32;
}

macro_rules! index {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) struct $name(u32);

        impl $name {
            /// Returns the index with this number (in `const` contexts too).
            #[inline]
            pub(crate) const fn new(i: u32) -> Self {
                Self(i)
            }
        }

        impl Idx for $name {
            const WHAT: &'static str = $what;

            #[inline]
            fn from_raw(i: u32) -> Self {
                Self(i)
            }

            #[inline]
            fn raw(self) -> u32 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}#{}", $what, self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

index!(
    /// The index of a net in its workflow (the root net is 0).
    NetIx,
    "net"
);
index!(
    /// The index of a task in its net.
    TaskIx,
    "task"
);
index!(
    /// The index of a place (a condition, implicit ones included) in its net.
    PlaceIx,
    "place"
);

index!(
    /// The index of an OR-join among the OR-joins of its net (`NetDef::or_joins`).
    OrIx,
    "OR-join"
);

index!(
    /// The index of a net instance in its case (the root net's instance is 0); public types
    /// carry it as the `u32` of [`crate::TaskRef::net_instance`].
    InstIx,
    "net instance"
);

/// A vector indexed by one kind of [`Idx`] only.
pub(crate) struct IxVec<I, T> {
    raw: Vec<T>,
    _index: PhantomData<fn(&I)>,
}

impl<I: Idx, T> IxVec<I, T> {
    /// Returns an empty vector with room for `n` elements.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self::from_vec(Vec::with_capacity(n))
    }

    /// Returns a vector of `n` copies of `value`.
    pub(crate) fn filled(value: T, n: usize) -> Self
    where
        T: Clone,
    {
        Self::from_vec(vec![value; n])
    }

    pub(crate) fn from_vec(raw: Vec<T>) -> Self {
        IxVec {
            raw,
            _index: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    #[inline]
    pub(crate) fn get(&self, i: I) -> Option<&T> {
        self.raw.get(i.raw() as usize)
    }

    #[inline]
    pub(crate) fn first_mut(&mut self) -> Option<&mut T> {
        self.raw.first_mut()
    }

    #[inline]
    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        self.raw.last_mut()
    }

    /// Returns the index the next pushed element gets.
    #[inline]
    pub(crate) fn next_index(&self) -> I {
        I::from_raw(self.raw.len() as u32)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: I) -> Option<&mut T> {
        self.raw.get_mut(i.raw() as usize)
    }

    /// Returns element `i`, or a [`Error::Misfit`] naming the index.
    #[inline]
    pub(crate) fn at(&self, i: I) -> Result<&T, Error> {
        Error::misfit(self.get(i), I::WHAT, i.raw())
    }

    /// Returns element `i` mutably, or a [`Error::Misfit`] naming the index.
    #[inline]
    pub(crate) fn at_mut(&mut self, i: I) -> Result<&mut T, Error> {
        Error::misfit(self.raw.get_mut(i.raw() as usize), I::WHAT, i.raw())
    }

    /// Appends `value` and returns its index.
    pub(crate) fn push(&mut self, value: T) -> I {
        let i = I::from_raw(self.raw.len() as u32);
        self.raw.push(value);
        i
    }

    /// Swaps elements `a` and `b`; returns whether both exist (nothing moves otherwise).
    pub(crate) fn swap(&mut self, a: I, b: I) -> bool {
        let (a, b) = (a.raw() as usize, b.raw() as usize);
        if a < self.raw.len() && b < self.raw.len() {
            self.raw.swap(a, b);
            true
        } else {
            false
        }
    }

    #[inline]
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.raw.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.raw.iter_mut()
    }

    /// Returns the elements with their indices.
    #[inline]
    pub(crate) fn iter_enumerated(&self) -> impl DoubleEndedIterator<Item = (I, &T)> {
        self.raw
            .iter()
            .enumerate()
            .map(|(i, v)| (I::from_raw(i as u32), v))
    }

    /// Returns every index of this vector, in order.
    #[inline]
    pub(crate) fn indices(&self) -> impl DoubleEndedIterator<Item = I> + use<I, T> {
        (0..self.raw.len() as u32).map(I::from_raw)
    }
}

impl<I, T: Clone> Clone for IxVec<I, T> {
    fn clone(&self) -> Self {
        IxVec {
            raw: self.raw.clone(),
            _index: PhantomData,
        }
    }
}

impl<I, T: PartialEq> PartialEq for IxVec<I, T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<I, T: fmt::Debug> fmt::Debug for IxVec<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl<I, T> Default for IxVec<I, T> {
    fn default() -> Self {
        IxVec {
            raw: Vec::new(),
            _index: PhantomData,
        }
    }
}

impl<'a, I: Idx, T> IntoIterator for &'a IxVec<I, T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.raw.iter()
    }
}

/// A set of indices of one kind, one bit each.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IxBits<I> {
    words: Vec<u64>,
    /// How many indices the set can hold.
    len: usize,
    _index: PhantomData<fn(&I)>,
}

impl<I: Idx> IxBits<I> {
    /// Returns a set able to hold indices below `n`, holding none (or all if `full`).
    pub(crate) fn new(n: usize, full: bool) -> Self {
        let mut words = vec![if full { u64::MAX } else { 0 }; n.div_ceil(64)];
        if full
            && !n.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        IxBits {
            words,
            len: n,
            _index: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn contains(&self, i: I) -> bool {
        let i = i.raw() as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds `i`; an index beyond the set's size is ignored.
    #[inline]
    pub(crate) fn insert(&mut self, i: I) {
        let i = i.raw() as usize;
        if i >= self.len {
            return;
        }
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, i: I) {
        let i = i.raw() as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    /// Returns the smallest index in the set that is `from` or after it.
    pub(crate) fn next_from(&self, from: u32) -> Option<I> {
        let from = from as usize;
        let mut at = from / 64;
        let mut word = self.words.get(at)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(I::from_raw((at * 64) as u32 + word.trailing_zeros()));
            }
            at += 1;
            word = *self.words.get(at)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_out_of_range_are_misfits_not_panics() {
        let mut v: IxVec<TaskIx, &str> = IxVec::default();
        let a = v.push("a");
        let b = v.push("b");
        assert_eq!(a, TaskIx::new(0));
        assert_eq!(v.get(b), Some(&"b"));
        assert_eq!(v.get(TaskIx::new(2)), None);
        assert_eq!(
            v.at(TaskIx::new(7)),
            Err(Error::Misfit {
                what: "task",
                index: 7
            })
        );
        assert!(v.swap(a, b));
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), vec!["b", "a"]);
        assert!(!v.swap(a, TaskIx::new(2)));
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), vec!["b", "a"]);
        let indices: Vec<TaskIx> = v.indices().collect();
        assert_eq!(indices, vec![TaskIx::new(0), TaskIx::new(1)]);
    }

    #[test]
    fn bit_sets_find_the_next_member_and_ignore_what_does_not_fit() {
        let mut bits: IxBits<TaskIx> = IxBits::new(130, false);
        bits.insert(TaskIx::new(3));
        bits.insert(TaskIx::new(129));
        bits.insert(TaskIx::new(130));
        assert!(bits.contains(TaskIx::new(3)) && !bits.contains(TaskIx::new(4)));
        assert_eq!(bits.next_from(4), Some(TaskIx::new(129)));
        bits.remove(TaskIx::new(129));
        assert_eq!(bits.next_from(4), None);
        let full: IxBits<TaskIx> = IxBits::new(70, true);
        assert_eq!(full.next_from(69), Some(TaskIx::new(69)));
        assert_eq!(full.next_from(70), None);
    }
}
