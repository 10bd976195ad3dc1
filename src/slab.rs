//! A minimal slab: values in a `Vec` addressed by a stable index, freed slots reused. The index is
//! the connection's mio token, so a lookup per event is one bounds-checked array access.

/// Values addressed by stable indices.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    /// Indices of empty slots, reused last-in first-out (the most recently freed slot is the
    /// most likely to still be in cache).
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    pub const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value` and returns its index.
    pub fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(value);
                index
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index).and_then(Option::as_mut)
    }

    /// Takes the value out; the index may be handed out again.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        let value = self.slots.get_mut(index).and_then(Option::take);
        if value.is_some() {
            self.len -= 1;
            self.free.push(index);
        }
        value
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The range of indices that may hold a value (for sweeps that remove while iterating).
    pub fn indices(&self) -> std::ops::Range<usize> {
        0..self.slots.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(Option::as_ref)
    }

    /// Drops every value.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn reuses_freed_indices() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!((a, b, slab.len()), (0, 1, 2));
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "a slot is freed once");
        assert_eq!(slab.insert("c"), a);
        assert_eq!(slab.get_mut(b).copied(), Some("b"));
        assert_eq!(slab.iter().count(), 2);
    }
}
