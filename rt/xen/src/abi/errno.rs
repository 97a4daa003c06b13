//! Xen's errno values (`xen/include/public/errno.h`) as a typed error.
use core::fmt;

/// A hypercall failed with `-errno`. The value is the positive errno.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XenError(pub i32);

macro_rules! errnos {
    ($($name:ident = $val:expr),* $(,)?) => {
        impl XenError {
            $(#[doc = concat!("`", stringify!($name), "`")] pub const $name: XenError = XenError($val);)*
        }

        /// The errno values, in the order of [`NAMES`].
        const VALUES: [u8; [$($val),*].len()] = [$($val),*];
        /// The C names, back to back, in the order of [`VALUES`].
        const NAMES: &str = concat!($(stringify!($name)),*);
        /// Where each name ends in [`NAMES`].
        const ENDS: [u16; VALUES.len()] = ends([$(stringify!($name)),*]);
    };
}

/// The end offset of each of `names` when they are put back to back.
const fn ends<const N: usize>(names: [&str; N]) -> [u16; N] {
    let mut ends = [0u16; N];
    let mut at = 0;
    let mut i = 0;
    while i < N {
        at += names[i].len();
        ends[i] = at as u16;
        i += 1;
    }
    ends
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7,
    ENOEXEC = 8, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
    EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, EISDIR = 21, EINVAL = 22,
    ENFILE = 23, EMFILE = 24, ENOSPC = 28, EROFS = 30, EMLINK = 31, EDOM = 33,
    ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38,
    ENOTEMPTY = 39, ENODATA = 61, ETIME = 62, EBADMSG = 74, EOVERFLOW = 75,
    EILSEQ = 84, ERESTART = 85, ENOTSOCK = 88, EOPNOTSUPP = 95, EADDRINUSE = 98,
    EADDRNOTAVAIL = 99, ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107,
    ETIMEDOUT = 110, ECONNREFUSED = 111,
}

impl XenError {
    /// The C name of this errno, if it is one Xen defines. A lookup in three
    /// tables: a `match` over the 46 values compiled to a tree of compares
    /// with a string per arm (about 1 KiB of code).
    pub fn name(self) -> Option<&'static str> {
        let i = VALUES.iter().position(|&v| i32::from(v) == self.0)?;
        let start = match i {
            0 => 0,
            _ => *ENDS.get(i - 1)?,
        };
        NAMES.get(usize::from(start)..usize::from(*ENDS.get(i)?))
    }

    /// Interprets a hypercall return value: negative values are `-errno`.
    pub fn check(ret: i64) -> Result<u64, XenError> {
        if ret < 0 {
            // Xen never returns below -4095; clamp anything stranger rather than wrap.
            Err(XenError(
                i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX),
            ))
        } else {
            Ok(ret as u64)
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sign and magnitude: the image then needs no `i32` formatting.
        let sign = if self.0 < 0 { "-" } else { "" };
        let n = self.0.unsigned_abs();
        match self.name() {
            Some(name) => write!(f, "{name} ({sign}{n})"),
            None => write!(f, "errno {sign}{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn check_maps_negative_to_errno() {
        assert_eq!(XenError::check(0), Ok(0));
        assert_eq!(XenError::check(17), Ok(17));
        assert_eq!(XenError::check(-22), Err(XenError::EINVAL));
        assert_eq!(XenError::check(i64::MIN), Err(XenError(i32::MAX)));
    }

    #[test]
    fn display_names_known_errnos() {
        assert_eq!(XenError::EBUSY.to_string(), "EBUSY (16)");
        assert_eq!(XenError(4000).to_string(), "errno 4000");
        assert_eq!(XenError(-7).to_string(), "errno -7");
        assert_eq!(XenError(i32::MIN).to_string(), "errno -2147483648");
    }

    #[test]
    fn names_come_from_the_tables() {
        assert_eq!(XenError::EPERM.name(), Some("EPERM"));
        assert_eq!(XenError::ENOENT.name(), Some("ENOENT"));
        assert_eq!(XenError::ENAMETOOLONG.name(), Some("ENAMETOOLONG"));
        assert_eq!(XenError::ECONNREFUSED.name(), Some("ECONNREFUSED"));
        for v in [0, 15, 20, 112, -1, 256 + 1] {
            assert_eq!(XenError(v).name(), None, "{v}");
        }
        // Every value has a name of its own: "E" and capitals or digits.
        let mut seen = std::vec::Vec::new();
        for &v in VALUES.iter() {
            let name = XenError(i32::from(v)).name().unwrap();
            assert!(name.starts_with('E') && name.len() > 2, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
            assert!(!seen.contains(&name), "{name} twice");
            seen.push(name);
        }
        assert_eq!(seen.concat(), NAMES);
    }
}
