import TapperCore

/// An `AsyncSequence` of whole catalog snapshots, as returned by ``RegistryBackend/watch()``.
///
/// It is built from one function, `next(after:)`, which waits until the catalog's index passes
/// `after` (or returns the current snapshot at once for `nil`) and returns nil when the backend
/// shuts down. Each backend implements that function however its store notifies changes.
public struct CatalogWatch: AsyncSequence, Sendable {
    public typealias Element = CatalogSnapshot

    let next: @Sendable (UInt64?) async throws -> CatalogSnapshot?
    let start: UInt64?

    /// - Parameters:
    ///   - after: start after this index (nil: deliver the current snapshot first).
    ///   - next: waits for the first snapshot with an index past its argument.
    public init(after: UInt64? = nil, next: @escaping @Sendable (UInt64?) async throws -> CatalogSnapshot?) {
        self.start = after
        self.next = next
    }

    /// The same watch, starting after `index`.
    public func after(_ index: UInt64?) -> CatalogWatch { CatalogWatch(after: index, next: next) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let next: @Sendable (UInt64?) async throws -> CatalogSnapshot?
        var last: UInt64?

        public mutating func next() async throws -> CatalogSnapshot? {
            guard let snapshot = try await next(last) else { return nil }
            last = snapshot.index
            return snapshot
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(next: next, last: start) }
}
