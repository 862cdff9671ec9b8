import Testing
import TapperCore

@Suite struct TimerHeapTests {
    @Test func popsOnlyDueValuesEarliestFirst() {
        var heap = TimerHeap<String>()
        heap.push(30, "c")
        heap.push(10, "a")
        heap.push(20, "b")
        #expect(heap.nextDeadline == 10)
        #expect(heap.popDue(now: 5) == nil)
        #expect(heap.popDue(now: 25) == "a")
        #expect(heap.popDue(now: 25) == "b")
        #expect(heap.popDue(now: 25) == nil)
        #expect(heap.count == 1)
        #expect(heap.popDue(now: 30) == "c")
        #expect(heap.nextDeadline == nil)
    }

    @Test func equalDeadlinesKeepInsertionOrder() {
        var heap = TimerHeap<Int>()
        for i in 0..<50 { heap.push(7, i) }
        var out: [Int] = []
        while let v = heap.popDue(now: 7) { out.append(v) }
        #expect(out == Array(0..<50))
    }

    @Test func matchesASortedReferenceOnRandomInput() {
        var rng = SplitMix64(seed: 42)
        var heap = TimerHeap<Int>()
        var reference: [(UInt64, Int)] = []
        for i in 0..<2000 {
            let d = rng.next() % 500
            heap.push(d, i)
            reference.append((d, i))
            if i % 7 == 0 {
                // Interleave pops with pushes.
                let now = rng.next() % 500
                while let v = heap.popDue(now: now) {
                    let j = reference.enumerated().filter { $0.element.0 <= now }.min { ($0.element.0, $0.element.1) < ($1.element.0, $1.element.1) }!.offset
                    #expect(reference[j].1 == v)
                    reference.remove(at: j)
                }
                #expect(!reference.contains { $0.0 <= now })
            }
        }
        let rest = reference.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.1)
        var out: [Int] = []
        while let v = heap.popDue(now: .max) { out.append(v) }
        #expect(out == rest)
    }
}
