//! A small single-vCPU async executor: tasks ([`Handle::spawn`]), timers
//! ([`Handle::sleep`], [`Handle::timeout`]) and I/O readiness through a
//! [`Reactor`] — the network [`Stack`] (sockets wake their tasks through
//! smoltcp's wakers) or, without a network, just the clock.
//!
//! When no task is ready the executor asks the reactor to block until the
//! earliest timer: in the guest that blocks the vCPU in the hypervisor
//! until an event channel or the one-shot timer fires — no busy loop.
//!
//! Invariants: a task is in the ready queue at most once (its `queued`
//! flag); a task's future is never polled after it completed or was
//! aborted (its slot is emptied and its generation bumped, so stale
//! wake-ups are ignored); a dropped [`Sleep`] leaves no timer behind.
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use smoltcp::time::Instant;
use spin::Mutex;

use crate::timers::Timers;
use crate::{SocketError, Stack};

/// Where the executor waits for I/O and time.
pub trait Reactor: Send + Sync {
    /// The time now.
    fn now(&self) -> Instant;
    /// Runs the I/O once (wakes the tasks whose sockets became ready).
    fn poll(&self);
    /// Blocks until I/O may be ready or `deadline` (`None`: until I/O).
    fn block(&self, deadline: Option<Instant>);
}

impl Reactor for Stack {
    fn now(&self) -> Instant {
        Stack::now(self)
    }
    fn poll(&self) {
        Stack::poll(self)
    }
    fn block(&self, deadline: Option<Instant>) {
        self.wait(deadline)
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    fut: Option<BoxFuture>,
    waker: Arc<TaskWaker>,
}

struct TaskWaker {
    id: usize,
    generation: u64,
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.shared
                .ready
                .lock()
                .push_back((self.id, self.generation));
            self.shared.stats.lock().wakeups += 1;
        }
    }
}

/// Executor counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ExecStats {
    /// Tasks spawned.
    pub spawned: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks aborted.
    pub aborted: u64,
    /// Tasks alive now.
    pub alive: u64,
    /// Task polls.
    pub polls: u64,
    /// Wake-ups of tasks.
    pub wakeups: u64,
    /// Times the executor blocked in the reactor.
    pub blocks: u64,
    /// Timers fired.
    pub timers_fired: u64,
}

struct Shared {
    reactor: Arc<dyn Reactor>,
    /// Task slots; `None` is free.
    tasks: Mutex<Vec<Option<Task>>>,
    /// Generation of each slot (bumped when its task ends).
    generations: Mutex<Vec<u64>>,
    ready: Mutex<VecDeque<(usize, u64)>>,
    /// Armed timers by (deadline, id).
    timers: Mutex<Timers>,
    next_timer: AtomicU64,
    stats: Mutex<ExecStats>,
}

/// Runs tasks: [`Executor::block_on`] drives a future and every spawned
/// task until that future completes.
pub struct Executor {
    handle: Handle,
}

impl core::fmt::Debug for Executor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Executor")
            .field("stats", &self.handle.stats())
            .finish()
    }
}

/// A handle to an executor: spawn tasks, sleep, time out. Cheap to clone.
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Wakes the future given to [`Executor::block_on`].
struct MainWaker(AtomicBool);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Tasks run before the reactor is polled again, at most.
const BATCH: usize = 64;

impl Executor {
    /// An executor over `reactor`.
    pub fn new(reactor: Arc<dyn Reactor>) -> Executor {
        Executor {
            handle: Handle(Arc::new(Shared {
                reactor,
                tasks: Mutex::new(Vec::new()),
                generations: Mutex::new(Vec::new()),
                ready: Mutex::new(VecDeque::new()),
                timers: Mutex::new(Timers::new()),
                next_timer: AtomicU64::new(0),
                stats: Mutex::new(ExecStats::default()),
            })),
        }
    }

    /// A handle for spawning and timers.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `fut` and the spawned tasks until `fut` completes; blocks in the
    /// reactor whenever nothing is ready. Tasks still alive then stay
    /// spawned for the next `block_on`.
    pub fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        let mut fut = core::pin::pin!(fut);
        let main = Arc::new(MainWaker(AtomicBool::new(true)));
        let main_waker = Waker::from(main.clone());
        let sh = &self.handle.0;
        loop {
            if main.0.swap(false, Ordering::AcqRel)
                && let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&main_waker))
            {
                return v;
            }
            for _ in 0..BATCH {
                let Some(next) = sh.ready.lock().pop_front() else {
                    break;
                };
                self.handle.run(next);
            }
            sh.reactor.poll();
            self.handle.fire_timers();
            if main.0.load(Ordering::Acquire) || !sh.ready.lock().is_empty() {
                continue;
            }
            let next = sh.timers.lock().next_deadline();
            sh.stats.lock().blocks += 1;
            sh.reactor.block(next);
            sh.reactor.poll();
            self.handle.fire_timers();
        }
    }
}

/// Stores a task's result and wakes whoever joins it (one copy per result
/// type, not one per future).
#[inline(never)]
fn finish<T>(st: &Mutex<JoinState<T>>, v: T) {
    let mut s = st.lock();
    s.result = Some(v);
    s.ended = true;
    if let Some(w) = s.waker.take() {
        w.wake();
    }
}

impl Handle {
    /// Counters.
    pub fn stats(&self) -> ExecStats {
        let mut s = *self.0.stats.lock();
        s.alive = s.spawned - s.completed - s.aborted;
        s
    }

    /// The reactor's clock.
    pub fn now(&self) -> Instant {
        self.0.reactor.now()
    }

    /// Starts `fut` as a task; its result comes through the handle.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        let state = Arc::new(Mutex::new(JoinState {
            result: None,
            waker: None,
            ended: false,
        }));
        let st = state.clone();
        let task: BoxFuture = Box::pin(async move {
            let v = fut.await;
            finish(&st, v);
        });
        let task_id = self.start(task);
        JoinHandle {
            state,
            task: task_id,
            exec: self.clone(),
        }
    }

    /// Gives `task` a slot and queues its first poll: the part of
    /// [`Handle::spawn`] that does not depend on the future's type (one copy
    /// in the image, not one per spawned future).
    #[inline(never)]
    fn start(&self, task: BoxFuture) -> (usize, u64) {
        let mut tasks = self.0.tasks.lock();
        let mut gens = self.0.generations.lock();
        let id = match tasks.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                tasks.push(None);
                gens.push(0);
                tasks.len() - 1
            }
        };
        let waker = Arc::new(TaskWaker {
            id,
            generation: gens[id],
            queued: AtomicBool::new(false),
            shared: self.0.clone(),
        });
        tasks[id] = Some(Task {
            fut: Some(task),
            waker: waker.clone(),
        });
        drop((tasks, gens));
        self.0.stats.lock().spawned += 1;
        waker.wake_by_ref();
        (id, waker.generation)
    }

    /// Polls one ready task.
    fn run(&self, (id, generation): (usize, u64)) {
        if self.0.generations.lock().get(id) != Some(&generation) {
            return; // It ended; a stale wake-up.
        }
        let (fut, waker) = {
            let mut tasks = self.0.tasks.lock();
            let Some(Some(t)) = tasks.get_mut(id) else {
                return;
            };
            let Some(fut) = t.fut.take() else {
                return; // Being polled (cannot happen on one vCPU).
            };
            (fut, t.waker.clone())
        };
        waker.queued.store(false, Ordering::Release);
        let w = Waker::from(waker);
        let mut fut = fut;
        self.0.stats.lock().polls += 1;
        let done = fut.as_mut().poll(&mut Context::from_waker(&w)).is_ready();
        let mut tasks = self.0.tasks.lock();
        let current = self.0.generations.lock()[id] == generation;
        if done && current {
            self.end(&mut tasks, id);
            self.0.stats.lock().completed += 1;
        } else if let Some(Some(t)) = tasks.get_mut(id)
            && current
        {
            t.fut = Some(fut);
        }
        // Else it was aborted while running: the future is dropped here.
    }

    fn end(&self, tasks: &mut [Option<Task>], id: usize) {
        tasks[id] = None;
        self.0.generations.lock()[id] += 1;
    }

    /// Wakes the timers that are due.
    fn fire_timers(&self) {
        let now = self.now();
        loop {
            let Some(w) = self.0.timers.lock().pop_due(now) else {
                return;
            };
            self.0.stats.lock().timers_fired += 1;
            w.wake();
        }
    }

    /// A future that completes `d` from its first poll.
    pub fn sleep(&self, d: Duration) -> Sleep {
        Sleep {
            exec: self.clone(),
            after: d,
            key: None,
        }
    }

    /// Runs `fut` for at most `d`: its output, or
    /// [`SocketError::TimedOut`] (and `fut` dropped — cancelled).
    pub fn timeout<F: Future>(&self, d: Duration, fut: F) -> Timeout<F> {
        Timeout {
            fut,
            sleep: self.sleep(d),
        }
    }
}

/// A task's result, as a future.
pub struct JoinHandle<T> {
    state: Arc<Mutex<JoinState<T>>>,
    task: (usize, u64),
    exec: Handle,
}

struct JoinState<T> {
    result: Option<T>,
    waker: Option<Waker>,
    ended: bool,
}

impl<T> core::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("task", &self.task)
            .finish()
    }
}

/// The task was aborted before it finished.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Aborted;

impl<T> JoinHandle<T> {
    /// Whether the task has ended (completed or aborted).
    pub fn is_finished(&self) -> bool {
        self.state.lock().ended
    }

    /// Stops the task: its future is dropped (closing what it owned) and it
    /// is never polled again. No effect on an ended task.
    pub fn abort(&self) {
        let (id, generation) = self.task;
        let sh = &self.exec.0;
        let mut tasks = sh.tasks.lock();
        if sh.generations.lock().get(id) != Some(&generation) {
            return;
        }
        let fut = tasks[id].as_mut().and_then(|t| t.fut.take());
        self.exec.end(&mut tasks, id);
        drop(tasks);
        sh.stats.lock().aborted += 1;
        drop(fut);
        let mut s = self.state.lock();
        s.ended = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Aborted>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.lock();
        if let Some(v) = s.result.take() {
            return Poll::Ready(Ok(v));
        }
        if s.ended {
            return Poll::Ready(Err(Aborted));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// See [`Handle::sleep`].
pub struct Sleep {
    exec: Handle,
    after: Duration,
    /// The armed timer, once polled.
    key: Option<(Instant, u64)>,
}

impl core::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sleep").field("after", &self.after).finish()
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.exec.now();
        let key = match self.key {
            Some(k) => k,
            None => {
                let id = self.exec.0.next_timer.fetch_add(1, Ordering::Relaxed);
                let k = (now + crate::duration(self.after), id);
                self.key = Some(k);
                k
            }
        };
        let mut timers = self.exec.0.timers.lock();
        if now >= key.0 {
            timers.remove(&key);
            return Poll::Ready(());
        }
        timers.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.exec.0.timers.lock().remove(&k);
        }
    }
}

/// See [`Handle::timeout`].
#[derive(Debug)]
pub struct Timeout<F> {
    fut: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, SocketError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` (no method hands it out by value) and `Timeout` has no
        // `Drop` impl that could move it.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above, `this.fut` stays where it is until dropped.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        if let Poll::Ready(v) = fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(SocketError::TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}
