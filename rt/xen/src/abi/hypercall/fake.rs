//! A fake hypervisor for host tests: it records calls and answers from a script.
extern crate std;
use super::Hypervisor;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::vec::Vec;

/// One recorded hypercall, with the struct it pointed to copied out (if asked).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub op: u32,
    pub args: Vec<u64>,
    pub pointee: Vec<u8>,
}

#[derive(Default)]
pub struct Fake {
    pub calls: RefCell<Vec<Call>>,
    pub replies: RefCell<VecDeque<i64>>,
    /// Copy this many bytes from the pointer in args[pointer_arg] when recording.
    pub capture: Option<(usize, usize)>,
}

impl Hypervisor for Fake {
    unsafe fn hypercall(&self, op: u32, args: &[u64]) -> i64 {
        let pointee = match self.capture {
            Some((i, n)) if args.len() > i && args[i] != 0 => {
                // SAFETY: tests only capture arguments that point to live structs of >= n bytes.
                unsafe { std::slice::from_raw_parts(args[i] as *const u8, n) }.to_vec()
            }
            _ => Vec::new(),
        };
        self.calls.borrow_mut().push(Call {
            op,
            args: args.to_vec(),
            pointee,
        });
        self.replies.borrow_mut().pop_front().unwrap_or(0)
    }
}
