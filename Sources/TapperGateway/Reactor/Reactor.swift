#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import NIOConcurrencyHelpers
import CEpoll
import TapperCore
import NIOCore

/// Something registered with a reactor's epoll set.
protocol PollTarget: AnyObject {
    /// The epoll events reported for its file descriptor.
    func ready(events: UInt32)
}

/// One thread running one epoll loop: the gateway's data path.
///
/// Why not a SwiftNIO event loop: a proxied request crosses the channel pipeline, promises,
/// pending-writes bookkeeping and `NIOAny` boxing four times (two reads, two writes). Measured
/// with callgrind that was about 12.5k of 35.6k instructions per request, and at 256 connections
/// the gap to nginx's CPU per request was wider than the rest of the data path could close.
/// A plain epoll loop with the same parser, routing and head rewriting needs none of it
/// (`Benchmarks/gateway/floor` measured the difference before this was built).
///
/// Everything else (registry API, discovery, health probes, auth providers) stays on SwiftNIO
/// and Swift concurrency; it reaches a reactor with ``execute(_:)``.
///
/// Per tick: wait for I/O (or the next timer, or not at all while tasks are queued), handle every
/// ready file descriptor, run due timers, then the queued tasks (``later(_:)``), the last of which
/// flush what the tick wrote (see `LoopContext.flushAtEndOfTick`).
final class Reactor: @unchecked Sendable {
    private let epfd: Int32
    private let wakeFD: Int32
    /// Registered targets by file descriptor, with the generation their events carry (a closed
    /// descriptor's number can be reused within one batch of events).
    private var slots: [Slot] = []
    private var nextGeneration: UInt32 = 1
    private var timers = TimerHeap<() -> Void>()
    private var tasks: [() -> Void] = []
    private var running: [() -> Void] = []
    private let lock = NIOLock()
    private var remote: [@Sendable () -> Void] = []
    private var wakePending = false
    private var stopped = false
    private var thread = pthread_t()
    /// When the current tick's events arrived (read once per `epoll_wait`): what timeouts are
    /// measured from, so moving a deadline costs no clock read. Late by at most the time a tick
    /// takes; latency metrics read the clock themselves.
    private(set) var tickTime = NIODeadline.now()
    /// The buffer socket reads go into; reused while no reader keeps a slice of it.
    var readBuffer: ByteBuffer? = ByteBufferAllocator().buffer(capacity: Reactor.readSize)
    static let readSize = 64 * 1024
    /// Where small queued buffers are coalesced into one TLS record (``Connection``).
    var tlsStaging: ByteBuffer? = nil

    private struct Slot {
        var target: (any PollTarget)?
        var generation: UInt32 = 0
    }

    private final class Wake: PollTarget {
        unowned let reactor: Reactor
        init(_ reactor: Reactor) { self.reactor = reactor }
        func ready(events: UInt32) { reactor.drainRemote() }
    }

    private init() {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epfd >= 0, "epoll_create1 failed: errno \(errno)")
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        precondition(wakeFD >= 0, "eventfd failed: errno \(errno)")
    }

    /// Starts `count` reactors, each on its own thread.
    static func start(count: Int) -> [Reactor] {
        (0..<count).map { _ in
            let r = Reactor()
            _ = r.register(r.wakeFD, Wake(r), events: UInt32(EPOLLIN.rawValue))
            let box = Unmanaged.passRetained(r).toOpaque()
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            let rc = pthread_create(
                &r.thread, &attr,
                { arg in
                    let reactor = Unmanaged<Reactor>.fromOpaque(arg!).takeRetainedValue()
                    reactor.run()
                    return nil
                }, box)
            pthread_attr_destroy(&attr)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            return r
        }
    }

    /// Whether the caller runs on this reactor's thread.
    var inReactor: Bool { pthread_equal(pthread_self(), thread) != 0 }

    // MARK: registration

    /// Adds `fd` to the epoll set; its events go to `target`.
    @discardableResult
    func register(_ fd: Int32, _ target: any PollTarget, events: UInt32) -> Bool {
        assert(inReactor || target is Wake, "Reactor.register off its thread")
        let i = Int(fd)
        if i >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: max(i + 1 - slots.count, slots.count))) }
        let generation = nextGeneration
        nextGeneration &+= 1
        slots[i] = Slot(target: target, generation: generation)
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = UInt64(UInt32(bitPattern: fd)) | UInt64(generation) << 32
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 {
            slots[i] = Slot()
            return false
        }
        return true
    }

    /// Forgets `fd` before it is closed (closing removes it from the epoll set).
    func forget(_ fd: Int32) {
        let i = Int(fd)
        if i < slots.count { slots[i] = Slot() }
    }

    /// Removes `fd` from the epoll set without closing it (a listener shared by reactors).
    func deregister(_ fd: Int32) {
        forget(fd)
        var ev = epoll_event()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev)
    }

    // MARK: tasks and timers

    /// Runs `task` on this reactor, from any thread.
    func execute(_ task: @escaping @Sendable () -> Void) {
        let wake = lock.withLock {
            remote.append(task)
            defer { wakePending = true }
            return !wakePending
        }
        if wake {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    /// Runs `body` on this reactor and returns its result to an async caller.
    func submit<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            execute { continuation.resume(returning: body()) }
        }
    }

    /// Runs `task` on this reactor after the current I/O events (on the reactor only).
    func later(_ task: @escaping () -> Void) {
        assert(inReactor, "Reactor.later off its thread")
        tasks.append(task)
    }

    /// Runs `task` at `deadline` (on the reactor only). There is no cancellation: a task checks
    /// whether it is still wanted.
    func schedule(at deadline: NIODeadline, _ task: @escaping () -> Void) {
        assert(inReactor, "Reactor.schedule off its thread")
        timers.push(deadline.uptimeNanoseconds, task)
    }

    /// Stops the loop once the tasks queued before are done, and waits for its thread to end.
    func stop() async {
        await submit { self.stopped = true }
        let t = thread
        _ = await Task.detached { pthread_join(t, nil) }.value
    }

    private func drainRemote() {
        var count: UInt64 = 0
        _ = Glibc.read(wakeFD, &count, 8)
        let batch = lock.withLock {
            wakePending = false
            defer { remote.removeAll(keepingCapacity: true) }
            return remote
        }
        for task in batch { task() }
    }

    // MARK: the loop

    private func run() {
        let capacity: Int32 = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(capacity))
        defer { events.deallocate() }
        while !stopped {
            var timeout: Int32 = -1
            if !tasks.isEmpty {
                timeout = 0
            } else if let next = timers.nextDeadline {
                let now = NIODeadline.now().uptimeNanoseconds
                timeout = next <= now ? 0 : Int32(min((next - now + 999_999) / 1_000_000, 60_000))
            }
            let n = epoll_wait(epfd, events, capacity, timeout)
            tickTime = NIODeadline.now()
            if n < 0 {
                if errno == EINTR { continue }
                preconditionFailure("epoll_wait failed: errno \(errno)")
            }
            for i in 0..<Int(n) {
                let ev = events[i]
                let fd = Int(UInt32(truncatingIfNeeded: ev.data.u64))
                let generation = UInt32(truncatingIfNeeded: ev.data.u64 >> 32)
                guard fd < slots.count, slots[fd].generation == generation, let target = slots[fd].target else { continue }
                target.ready(events: ev.events)
            }
            if timers.nextDeadline != nil {
                let now = tickTime.uptimeNanoseconds
                while let task = timers.popDue(now: now) { task() }
            }
            runTasks()
        }
        runTasks()
    }

    private func runTasks() {
        // Tasks queued while these run go to the next round (the loop then does not block).
        guard !tasks.isEmpty else { return }
        swap(&tasks, &running)
        for task in running { task() }
        running.removeAll(keepingCapacity: true)
    }
}

/// A value that belongs to one reactor, carried through code that needs `Sendable` (an auth
/// provider's task) and only opened again on that reactor.
struct ReactorBound<Value>: @unchecked Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}
