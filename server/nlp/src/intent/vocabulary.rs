//! Feature key → weight row: an open-addressing table with linear probing,
//! rebuilt from the model's key list on load. Keys are already well-mixed
//! hashes, so the slot is the key's low bits; the table is kept at most two
//! thirds full, so a probe usually touches one cache line. Key 0 marks an empty slot
//! (the featurizer never produces it).

/// Key → row lookup for the rows of an [`super::IntentModel`].
#[derive(Debug, Clone, Default)]
pub(super) struct Vocabulary {
    /// (key, row) per slot; key 0 = empty.
    slots: Vec<(u32, u32)>,
    mask: usize,
}

impl Vocabulary {
    /// A table for `keys` (row `i` holds `keys[i]`); `None` when a key is 0,
    /// repeated, or there are more than `u32::MAX` of them.
    pub(super) fn new(keys: &[u32]) -> Option<Vocabulary> {
        let size = (keys.len() + keys.len() / 2).next_power_of_two().max(16);
        let mut table = Vocabulary {
            slots: vec![(0, 0); size],
            mask: size - 1,
        };
        for (row, &key) in keys.iter().enumerate() {
            if key == 0 {
                return None;
            }
            let row = u32::try_from(row).ok()?;
            let mut slot = table.slot_of(key);
            loop {
                match table.slots[slot].0 {
                    0 => break,
                    k if k == key => return None,
                    _ => slot = (slot + 1) & table.mask,
                }
            }
            table.slots[slot] = (key, row);
        }
        Some(table)
    }

    /// The row of `key`, if it has one.
    #[inline]
    pub(super) fn row(&self, key: u32) -> Option<u32> {
        let mut slot = self.slot_of(key);
        loop {
            let (k, row) = *self.slots.get(slot)?;
            if k == key {
                return Some(row);
            }
            if k == 0 {
                return None;
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// Reads the first slot of every key, without branching on what it
    /// finds, so that the cache misses of many lookups overlap (see
    /// `IntentModel::vectorize_into`); the result only keeps the reads alive.
    pub(super) fn touch(&self, keys: impl Iterator<Item = u32>) -> u32 {
        keys.fold(0, |acc, key| {
            acc ^ self.slots.get(self.slot_of(key)).map_or(0, |s| s.0)
        })
    }

    fn slot_of(&self, key: u32) -> usize {
        // Widening: u32 always fits a usize on the platforms we build for.
        key as usize & self.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<u32> = (1..1000u32)
            .map(|i| i.wrapping_mul(0x9E37_79B9) | 1)
            .collect();
        let v = Vocabulary::new(&keys).unwrap();
        for (row, &k) in keys.iter().enumerate() {
            assert_eq!(v.row(k), Some(u32::try_from(row).unwrap()));
        }
        assert_eq!(v.row(2), None);
        assert_eq!(Vocabulary::new(&[]).unwrap().row(5), None);
    }

    #[test]
    fn colliding_slots_probe_on() {
        // Same low bits: all land on slot 3 of a 16-slot table.
        let keys = [3, 3 + 16, 3 + 32];
        let v = Vocabulary::new(&keys).unwrap();
        assert_eq!(v.row(3 + 32), Some(2));
        assert_eq!(v.row(3 + 48), None);
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(Vocabulary::new(&[0]).is_none());
        assert!(Vocabulary::new(&[7, 7]).is_none());
    }
}
