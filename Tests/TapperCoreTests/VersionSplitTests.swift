import Testing
import TapperCore

@Suite struct VersionSplitTests {
    func percents(_ split: VersionSplit?) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: (split?.shares ?? []).map { ($0.version, $0.percent) })
    }

    @Test func aCanaryGetsItsWeightAndTheRestGoesToTheUnweightedVersion() throws {
        let split = try #require(VersionSplit.compute(versions: ["1", "1", "1", "2"], weights: ["2": 10]))
        #expect(percents(split) == ["1": 90, "2": 10])
        #expect(split.shares.map(\.instances) == [3, 1])
        #expect(split.shares.map(\.weighted) == [false, true])
    }

    @Test func unweightedVersionsShareTheRemainderByInstanceCount() {
        let split = VersionSplit.compute(versions: ["a", "b", "b", "b", "c"], weights: ["c": 20])
        #expect(percents(split) == ["a": 20, "b": 60, "c": 20])
    }

    @Test func weightsOverAHundredOrCoveringEveryVersionAreScaled() {
        #expect(percents(VersionSplit.compute(versions: ["a", "b"], weights: ["a": 30, "b": 10])) == ["a": 75, "b": 25])
        #expect(percents(VersionSplit.compute(versions: ["a", "b", "c"], weights: ["a": 80, "b": 80])) == ["a": 50, "b": 50, "c": 0])
        // A version at 0 gets nothing: draining a version without deregistering it.
        #expect(percents(VersionSplit.compute(versions: ["a", "b"], weights: ["b": 0])) == ["a": 100, "b": 0])
        #expect(percents(VersionSplit.compute(versions: ["a", "b"], weights: ["a": 100])) == ["a": 100, "b": 0])
    }

    @Test func noSplitWithoutWeightsOrWithOneVersion() {
        #expect(VersionSplit.compute(versions: ["a", "b", "b"], weights: [:]) == nil, "by instance count: the balancer sees all")
        #expect(VersionSplit.compute(versions: ["a", "a"], weights: ["a": 10]) == nil)
        #expect(VersionSplit.compute(versions: ["a", "b"], weights: ["c": 10]) == nil, "the weighted version is not present")
        #expect(VersionSplit.compute(versions: ["a", "b"], weights: ["a": 0, "b": 0]) == nil, "all at zero: serve by instance count")
        #expect(VersionSplit.compute(versions: [String](), weights: ["a": 10]) == nil)
    }

    @Test func theLatestRegistrationOfAVersionSetsItsWeight() {
        func record(_ id: String, _ version: String, _ weight: Double?, index: UInt64) -> InstanceRecord {
            InstanceRecord(
                service: "users", instanceID: id,
                registration: ServiceRegistration(url: "http://127.0.0.1:9000", version: version, trafficWeight: weight), createIndex: 1, modifyIndex: index
            )
        }
        let weights = VersionSplit.weights(of: [
            record("a", "2", 10, index: 5), record("b", "2", 50, index: 9), record("c", "2", nil, index: 12), record("d", "1", nil, index: 3),
        ])
        #expect(weights == ["2": 50])
    }

    @Test func thePickerIsExactAndSpreadsTheCanaryOut() throws {
        let split = try #require(VersionSplit.compute(versions: ["1", "2"], weights: ["2": 10]))
        var picker = VersionPicker()
        var counts = [0, 0]
        var order: [Int] = []
        for _ in 0..<10_000 {
            let i = picker.pick(split)
            counts[i] += 1
            if order.count < 20 { order.append(i) }
        }
        #expect(counts == [9_000, 1_000])
        // Two canary turns in every 20, never back to back.
        #expect(order.filter { $0 == 1 }.count == 2)
        #expect(!zip(order, order.dropFirst()).contains { $0 == 1 && $1 == 1 })
    }

    @Test func thePickerFollowsAChangedSplitAtOnce() throws {
        var picker = VersionPicker()
        let before = try #require(VersionSplit.compute(versions: ["1", "2"], weights: ["2": 10]))
        for _ in 0..<37 { _ = picker.pick(before) }
        let after = try #require(VersionSplit.compute(versions: ["1", "2"], weights: ["2": 50]))
        var counts = [0, 0]
        for _ in 0..<1_000 { counts[picker.pick(after)] += 1 }
        #expect(abs(counts[1] - 500) <= 1)
        // A share of 0 is never picked, even with a score left over from before.
        let drained = try #require(VersionSplit.compute(versions: ["1", "2"], weights: ["2": 0]))
        for _ in 0..<100 { #expect(picker.pick(drained) == 0) }
    }

    @Test func fractionalSharesKeepTheirPrecision() throws {
        let split = try #require(VersionSplit.compute(versions: ["1", "2"], weights: ["2": 0.5]))
        var picker = VersionPicker()
        var canary = 0
        for _ in 0..<10_000 where picker.pick(split) == 1 { canary += 1 }
        #expect(canary == 50)
    }

    @Test func cookiesAreReadByName() {
        #expect(CookieHeader.value(named: "tapper-version", in: "a=1; tapper-version=2.0.0; b=3") == "2.0.0")
        #expect(CookieHeader.value(named: "tapper-version", in: "tapper-version=\"1.0\"") == "1.0")
        #expect(CookieHeader.value(named: "v", in: "vv=1;v=2") == "2")
        #expect(CookieHeader.value(named: "v", in: "a=1") == nil)
        #expect(CookieHeader.value(named: "v", in: "") == nil)
        #expect(CookieHeader.value(named: "v", in: "v") == nil)
    }
}
