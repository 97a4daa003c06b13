//! CRC-32 (IEEE 802.3, reflected: zlib's, gzip's), bytewise from a table:
//! the store's record checksum, and what a test compares with dom0's
//! `gzip` trailer.

/// A running CRC-32.
#[derive(Clone)]
pub struct Crc32 {
    table: [u32; 256],
    state: u32,
}

impl core::fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Crc32({:#010x})", !self.state)
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC of nothing yet.
    pub fn new() -> Crc32 {
        let mut table = [0u32; 256];
        for (i, e) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        Crc32 { table, state: !0 }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.state;
        for &b in data {
            c = (c >> 8) ^ self.table[((c ^ u32::from(b)) & 0xff) as usize];
        }
        self.state = c;
    }

    /// The CRC of everything fed so far.
    pub fn value(&self) -> u32 {
        !self.state
    }

    /// The CRC of `data` alone.
    pub fn of(&mut self, data: &[u8]) -> u32 {
        self.state = !0;
        self.update(data);
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_of_crc32() {
        let mut c = Crc32::new();
        assert_eq!(c.of(b"123456789"), 0xCBF4_3926);
        c.of(b"1234");
        c.update(b"56789");
        assert_eq!(c.value(), 0xCBF4_3926);
    }
}
