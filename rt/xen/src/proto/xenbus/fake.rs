//! A fake xenstore for handshake tests: the frontend's and the backend's
//! keys in a map, a backend that acts by a script on every tick and every
//! publish, and a clock that only moves when the frontend sleeps. Any
//! device class's tests use it (`device/<class>/0`, backend in domain 7,
//! we in domain 3).
extern crate std;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};

use super::{Bus, state};
use crate::abi::errno::XenError;
use crate::proto::xenstore::XsError;

/// What the backend does on a tick: `(store, now_ms)`.
pub type Script = Box<dyn FnMut(&mut BTreeMap<String, String>, u64)>;

/// The backend's domain in every fake.
pub const BACKEND_ID: u16 = 7;
/// The frontend's (our) domain in every fake: the backend's directory is
/// `/local/domain/7/backend/<class>/3/0`, as a real toolstack names it.
pub const FRONTEND_ID: u16 = 3;
/// Milliseconds each wait of the handshake gets in the tests.
pub const TIMEOUT: u64 = 1000;

/// xenstore with a scripted backend.
pub struct Fake {
    /// Every key, by full path.
    pub store: BTreeMap<String, String>,
    /// The clock.
    pub now: u64,
    script: Script,
    /// Publishes fail with this error.
    pub publish_error: Option<XsError>,
    /// Publishes tried.
    pub publishes: u32,
    /// Whether the bus offers watches (off: the handshake polls).
    pub watches: bool,
    /// The path watched now.
    pub watched: Option<String>,
    /// Watches set so far.
    pub watches_set: u32,
    /// Reads of any key.
    pub reads: u32,
}

impl Fake {
    /// A device of `class`, both ends Initialising, with the frontend keys
    /// `fe_keys` and the backend keys `be_keys` written.
    pub fn new(
        class: &str,
        fe_keys: &[(&str, &str)],
        be_keys: &[(&str, &str)],
        script: impl FnMut(&mut BTreeMap<String, String>, u64) + 'static,
    ) -> Self {
        let fe = format!("device/{class}/0");
        let be = format!("/local/domain/{BACKEND_ID}/backend/{class}/{FRONTEND_ID}/0");
        let mut f = Fake {
            store: BTreeMap::new(),
            now: 0,
            script: Box::new(script),
            publish_error: None,
            publishes: 0,
            watches: false,
            watched: None,
            watches_set: 0,
            reads: 0,
        };
        f.set(&format!("{fe}/backend"), &be);
        f.set(&format!("{fe}/backend-id"), &format!("{BACKEND_ID}"));
        f.set(&format!("{fe}/state"), "1");
        f.set(&format!("{be}/state"), "1");
        for (k, v) in fe_keys {
            f.set(&format!("{fe}/{k}"), v);
        }
        for (k, v) in be_keys {
            f.set(&format!("{be}/{k}"), v);
        }
        f
    }

    /// The value at `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.store.get(k).map(String::as_str)
    }

    /// Sets `k`.
    pub fn set(&mut self, k: &str, v: &str) {
        self.store.insert(k.to_string(), v.to_string());
    }
}

impl Bus for Fake {
    fn read(&mut self, path: &str) -> Result<String, XsError> {
        self.reads += 1;
        self.store
            .get(path)
            .cloned()
            .ok_or(XsError::Error(XenError::ENOENT))
    }
    fn publish(&mut self, dir: &str, entries: &[(&str, String)]) -> Result<(), XsError> {
        self.publishes += 1;
        if let Some(e) = self.publish_error.clone() {
            return Err(e);
        }
        for (k, v) in entries {
            self.store.insert(format!("{dir}/{k}"), v.clone());
        }
        (self.script)(&mut self.store, self.now);
        Ok(())
    }
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.now += ms;
        (self.script)(&mut self.store, self.now);
    }
    fn watch(&mut self, path: &str) -> bool {
        if self.watches {
            self.watched = Some(path.to_string());
            self.watches_set += 1;
        }
        self.watches
    }
    fn unwatch(&mut self, path: &str) {
        assert_eq!(
            self.watched.as_deref(),
            Some(path),
            "unwatch of a path not watched"
        );
        self.watched = None;
    }
    /// The clock moves a millisecond at a time until the watched key
    /// changes (the watch fires) or `ms` pass.
    fn wait_change(&mut self, path: &str, ms: u64) {
        assert_eq!(
            self.watched.as_deref(),
            Some(path),
            "a wait without its watch"
        );
        let before = self.store.get(path).cloned();
        for _ in 0..ms {
            self.now += 1;
            (self.script)(&mut self.store, self.now);
            if self.store.get(path) != before.as_ref() {
                return;
            }
        }
    }
}

/// A well-behaved backend of `class`: InitWait after `delay` ms, Connected
/// once the frontend has published `published` (its spec's state).
pub fn backend(
    class: &str,
    delay: u64,
    published: u32,
) -> impl FnMut(&mut BTreeMap<String, String>, u64) + 'static {
    let fe_state = format!("device/{class}/0/state");
    let be_state = format!("/local/domain/{BACKEND_ID}/backend/{class}/{FRONTEND_ID}/0/state");
    let published = format!("{published}");
    move |s, now| {
        let st = s.get(&be_state).cloned().unwrap_or_default();
        if now >= delay && st == "1" {
            s.insert(be_state.clone(), format!("{}", state::INIT_WAIT));
        }
        if st == "2" && s.get(&fe_state) == Some(&published) {
            s.insert(be_state.clone(), format!("{}", state::CONNECTED));
        }
    }
}
