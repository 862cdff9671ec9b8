// The live-server kit builds on the Core-only kit: a test that imports TapperTesting gets
// MockClock, poll and TestFailure too (as NIOPosix re-exports NIOCore).
@_exported import TapperTestKit
