/// A min-heap of values by deadline (nanoseconds on any monotonic clock), earliest first;
/// values with the same deadline come out in the order they went in.
///
/// The gateway's reactors keep their timers here. It is pure: the caller passes "now".
///
/// Inlinable: the reactors' heap lives in another module, and unspecialized, every comparison
/// and swap of its (deadline, seq, closure) entries went through the runtime's generic tuple
/// witnesses (callgrind, HTTP/2 streams arming timers: 40% of the I/O thread's instructions).
public struct TimerHeap<Value> {
    @usableFromInline var items: [(deadline: UInt64, seq: UInt64, value: Value)] = []
    @usableFromInline var seq: UInt64 = 0

    @inlinable public init() {}

    @inlinable public var count: Int { items.count }

    /// The earliest deadline, if any.
    @inlinable public var nextDeadline: UInt64? { items.first?.deadline }

    @inlinable public mutating func push(_ deadline: UInt64, _ value: Value) {
        seq &+= 1
        items.append((deadline, seq, value))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes and returns the earliest value if its deadline is at or before `now`.
    @inlinable public mutating func popDue(now: UInt64) -> Value? {
        guard let first = items.first, first.deadline <= now else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < items.count && less(l, m) { m = l }
                if r < items.count && less(r, m) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first.value
    }

    @inlinable func less(_ a: Int, _ b: Int) -> Bool {
        items[a].deadline < items[b].deadline || (items[a].deadline == items[b].deadline && items[a].seq < items[b].seq)
    }
}
