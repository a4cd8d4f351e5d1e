//! Fixed-layout (`#[repr(C)]`) structures and their byte encoding, without `unsafe` and without
//! serde: the format of everything that lives in shared memory (region header, ring records).
//!
//! [`fixed_layout!`](crate::fixed_layout) declares a `#[repr(C)]` struct whose fields are all
//! [`Le`] types and generates `SIZE`, `write_to` and `read_from`. A compile-time assertion checks
//! that the fields' sizes add up to `size_of::<Self>()`, i.e. that the struct has no padding, so
//! the sequential little-endian encoding is byte-for-byte the `#[repr(C)]` layout on the
//! little-endian hosts this runs on, and the documented offsets hold. `FIELDS` names the fields
//! and their types, in order, for the generated documentation tables.

/// A field type of a fixed-layout structure: encodes to exactly `SIZE` little-endian bytes.
pub trait Le: Sized + Copy {
    /// Encoded size in bytes (equal to `size_of::<Self>()`).
    const SIZE: usize;
    /// Writes the value into `out[..SIZE]`; `out` is exactly `SIZE` bytes long.
    fn put(&self, out: &mut [u8]);
    /// Reads a value from `b`, exactly `SIZE` bytes long.
    fn get(b: &[u8]) -> Self;
}

macro_rules! le_int {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le_int!(u8, u16, u32, u64, i32, i64);

impl Le for [u32; 3] {
    const SIZE: usize = 12;
    #[inline]
    fn put(&self, out: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    #[inline]
    fn get(b: &[u8]) -> Self {
        [u32::get(&b[0..4]), u32::get(&b[4..8]), u32::get(&b[8..12])]
    }
}

/// Declares a `#[repr(C)]` structure with a checked, padding-free little-endian encoding.
///
/// ```
/// gpushare_client::fixed_layout! {
///     /// Example.
///     pub struct Pair { /// a
///         pub a: u32, /// b
///         pub b: u32 }
/// }
/// let mut buf = [0u8; Pair::SIZE];
/// assert!(Pair { a: 1, b: 2 }.write_to(&mut buf));
/// assert_eq!(Pair::read_from(&buf), Some(Pair { a: 1, b: 2 }));
/// ```
#[macro_export]
macro_rules! fixed_layout {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        const _: () = assert!(
            0 $(+ <$ty as $crate::fixed::Le>::SIZE)* == ::std::mem::size_of::<$name>(),
            "fixed_layout struct has padding"
        );

        impl $name {
            /// Encoded size in bytes (= `size_of::<Self>()`, no padding).
            pub const SIZE: usize = ::std::mem::size_of::<$name>();

            /// Field names and types in layout order (what documentation tables show).
            pub const FIELDS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), stringify!($ty))),*];

            /// Encodes into `out[..SIZE]`; false (nothing written) when `out` is shorter.
            #[inline]
            pub fn write_to(&self, out: &mut [u8]) -> bool {
                let Some(out) = out.get_mut(..Self::SIZE) else { return false };
                let mut _at = 0usize;
                $(
                    let n = <$ty as $crate::fixed::Le>::SIZE;
                    $crate::fixed::Le::put(&self.$field, &mut out[_at.._at + n]);
                    _at += n;
                )*
                true
            }

            /// Decodes from `b[..SIZE]`; `None` when `b` is shorter.
            #[inline]
            pub fn read_from(b: &[u8]) -> Option<Self> {
                let b = b.get(..Self::SIZE)?;
                let mut _at = 0usize;
                $(
                    let n = <$ty as $crate::fixed::Le>::SIZE;
                    let $field = <$ty as $crate::fixed::Le>::get(&b[_at.._at + n]);
                    _at += n;
                )*
                Some($name { $($field),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::fixed_layout! {
        /// Test structure.
        pub struct Sample {
            /// a
            pub a: u64,
            /// b
            pub b: [u32; 3],
            /// c
            pub c: u16,
            /// d
            pub d: u16,
        }
    }

    #[test]
    fn round_trip_and_offsets() {
        let s = Sample {
            a: 0x0102_0304_0506_0708,
            b: [1, 2, 3],
            c: 0xAABB,
            d: 9,
        };
        let mut buf = [0u8; 24];
        assert_eq!(Sample::SIZE, 24);
        assert!(s.write_to(&mut buf));
        assert_eq!(buf[0], 0x08);
        assert_eq!(buf[std::mem::offset_of!(Sample, b)], 1);
        assert_eq!(buf[std::mem::offset_of!(Sample, c)], 0xBB);
        assert_eq!(Sample::read_from(&buf), Some(s));
        assert_eq!(Sample::read_from(&buf[..23]), None);
        assert!(!s.write_to(&mut buf[..10]));
        assert_eq!(
            Sample::FIELDS,
            &[("a", "u64"), ("b", "[u32; 3]"), ("c", "u16"), ("d", "u16")]
        );
    }
}
